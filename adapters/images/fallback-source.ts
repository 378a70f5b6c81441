/**
 * An ImageSource over several others, asked in order: the first that has the study serves it (its series
 * too). Used to read studies pushed to this service (STOW-RS inbox) before asking the PACS. Only
 * STUDY.NOT_FOUND moves on to the next source; any other failure (an unreachable PACS) is reported as is.
 */
import { DomainError, isDomainError } from '../../domain/errors.ts';
import type {
  ImageSource,
  LoadedSeries,
  LoadProgress,
  StudyDescriptor,
} from '../../domain/ports/image-source.port.ts';

export class FallbackImageSource implements ImageSource {
  readonly #sources: readonly ImageSource[];
  /** Which source answered for a study (recent studies only). */
  readonly #owner = new Map<string, ImageSource>();

  constructor(sources: readonly ImageSource[]) {
    if (sources.length === 0) throw new RangeError('at least one image source is needed');
    this.#sources = sources;
  }

  async findStudy(studyInstanceUid: string): Promise<StudyDescriptor> {
    let notFound: DomainError | undefined;
    for (const source of this.#sources) {
      try {
        const study = await source.findStudy(studyInstanceUid);
        this.#owner.delete(studyInstanceUid);
        this.#owner.set(studyInstanceUid, source);
        while (this.#owner.size > 1000) this.#owner.delete(this.#owner.keys().next().value!);
        return study;
      } catch (e) {
        if (isDomainError(e) && e.code === 'STUDY.NOT_FOUND') {
          notFound ??= e;
          continue;
        }
        throw e;
      }
    }
    throw (
      notFound ??
      new DomainError('STUDY.NOT_FOUND', `study ${studyInstanceUid} was not found`, {
        issueType: 'not-found',
      })
    );
  }

  async loadSeries(
    studyInstanceUid: string,
    seriesInstanceUid: string,
    progress?: LoadProgress,
  ): Promise<LoadedSeries> {
    let source = this.#owner.get(studyInstanceUid);
    if (source === undefined) {
      await this.findStudy(studyInstanceUid);
      source = this.#owner.get(studyInstanceUid)!;
    }
    return source.loadSeries(studyInstanceUid, seriesInstanceUid, progress);
  }
}
