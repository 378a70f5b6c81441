/**
 * Where pushed DICOM instances land (STOW-RS to this service, a folder import): each instance is validated by
 * parsing and stored, or refused with a reason, independently of the others. Storing an instance that is
 * already held (same SOPInstanceUID) changes nothing and counts as stored. A stored study can then be read
 * back through an ImageSource by its StudyInstanceUID.
 */

export interface InboxInstanceOutcome {
  readonly sopClassUid?: string;
  readonly sopInstanceUid?: string;
  readonly studyInstanceUid?: string;
  readonly seriesInstanceUid?: string;
  /** Stored now or held already (true), or refused (false, with failureReason and error). */
  readonly stored: boolean;
  /** True when the instance was already held: nothing was written. */
  readonly duplicate?: boolean;
  /**
   * DICOM failure reason for a refused instance: 0xC000 cannot understand (not DICOM, truncated, malformed,
   * required attribute missing), 0x0122 SOP class / modality not accepted, 0xC122 transfer syntax not
   * supported, 0x0110 processing failure (e.g. another study than the one addressed), 0xA700 out of resources.
   */
  readonly failureReason?: number;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface InboxResult {
  readonly instances: readonly InboxInstanceOutcome[];
}

export interface InboxStoreOptions {
  /** STOW-RS to /studies/{uid}: instances of other studies are refused. */
  readonly studyInstanceUid?: string;
}

export interface DicomInbox {
  /** Validates and stores each instance on its own; never throws for a bad instance (see the outcomes). */
  store(instances: readonly Uint8Array[], options?: InboxStoreOptions): Promise<InboxResult>;
}
