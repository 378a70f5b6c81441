/**
 * Structured logging as the domain needs it (pino's call shape: context object first, then message).
 * Never put patient identifiers or names in either; the adapter redacts known fields as a second line of defence.
 */
export interface Logger {
  debug(context: Readonly<Record<string, unknown>>, message: string): void;
  info(context: Readonly<Record<string, unknown>>, message: string): void;
  warn(context: Readonly<Record<string, unknown>>, message: string): void;
  error(context: Readonly<Record<string, unknown>>, message: string): void;
}

/** A logger that drops everything (for callers that opt out of logging). */
export const SILENT_LOGGER: Logger = {
  debug() {
    /* dropped */
  },
  info() {
    /* dropped */
  },
  warn() {
    /* dropped */
  },
  error() {
    /* dropped */
  },
};
