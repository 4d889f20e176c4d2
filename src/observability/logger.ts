import pino from 'pino';

export type Logger = pino.Logger;

/**
 * Structured JSON logs. Secrets are never passed to the logger on purpose; the redaction list is
 * the second line of defence for any object that carries one by accident.
 */
export const REDACTED_PATHS = [
  'mek',
  '*.mek',
  'privateKey',
  '*.privateKey',
  'private_key',
  '*.private_key',
  'password',
  '*.password',
  'client_secret',
  '*.client_secret',
  'clientSecret',
  '*.clientSecret',
  'refresh_token',
  '*.refresh_token',
  'access_token',
  '*.access_token',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/**
 * Where the service writes its log: readable lines (pino-pretty, loaded only then) when stdout is an
 * interactive terminal outside production; otherwise undefined, that is JSON lines on stdout, for
 * log collectors and for the tests that parse them.
 */
export async function terminalDestination(production: boolean): Promise<pino.DestinationStream | undefined> {
  if (production || !process.stdout.isTTY) return undefined;
  const { default: pretty } = await import('pino-pretty');
  return pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname', singleLine: true, sync: true });
}
