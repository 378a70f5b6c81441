/** HL7 v2 order messages for tests (ORM^O01 with ZDS, OMI^O23 with IPC), with knobs to break them. */

export interface OrmKnobs {
  control?: string;
  type?: string;
  version?: string;
  study?: string;
  prior?: string | null;
  placer?: string;
  patientId?: string;
  /** Raw PID-3 (overrides patientId). */
  pid3?: string;
  orderControl?: string;
  withoutPid?: boolean;
  withoutZds?: boolean;
  extraSegment?: string;
}

export function ORM(k: OrmKnobs = {}): string {
  const study = k.study ?? '1.2.826.0.1.3680043.8.498.10026';
  const prior = k.prior === undefined ? '1.2.826.0.1.3680043.8.498.10025' : k.prior;
  const placer = k.placer ?? 'PLC-77';
  const pid3 = k.pid3 ?? `${k.patientId ?? 'MRN0026'}^^^HOSP^MR`;
  const segments = [
    `MSH|^~\\&|RIS|HOSP|MSLESION|HOSP|20260302100000||${k.type ?? 'ORM^O01^ORM_O01'}|${k.control ?? 'CTRL-1'}|P|${k.version ?? '2.5'}`,
    ...(k.withoutPid === true ? [] : [`PID|1||${pid3}||DOE^JANE||19800101|F`]),
    'PV1|1|O',
    `ORC|${k.orderControl ?? 'NW'}|${placer}|||SC`,
    `OBR|1|${placer}||MSLESION^MS lesion analysis^99MSL|||20260302095000`,
    ...(k.withoutZds === true ? [] : [`ZDS|${study}^RIS^Application^DICOM`]),
    ...(prior === null || k.withoutZds === true ? [] : [`ZDS|${prior}^RIS^Application^DICOM|PRIOR`]),
    ...(k.extraSegment === undefined ? [] : [k.extraSegment]),
  ];
  return segments.join('\r');
}

export function OMI(k: { control?: string; study?: string; placer?: string } = {}): string {
  const placer = k.placer ?? 'PLC-88';
  return [
    `MSH|^~\\&|RIS|HOSP|MSLESION|HOSP|20260302100000||OMI^O23^OMI_O23|${k.control ?? 'OMI-1'}|P|2.5.1`,
    'PID|1||X-1^^^OTHER^PI~MRN0026^^^HOSP&2.16.840.1.113883.3.1&ISO^MR||DOE^JANE',
    `ORC|NW|${placer}|||SC`,
    'TQ1|1',
    `OBR|1|${placer}||MSLESION^MS lesion analysis^99MSL`,
    `IPC|ACC-77|RP-1|${k.study ?? '1.2.826.0.1.3680043.8.498.10026'}|SPS-1|MR`,
  ].join('\r');
}
