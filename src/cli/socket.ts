import path from 'node:path';

/**
 * The CLI socket of an embedded (PGlite) server. Only one process may open a PGlite data directory,
 * so while the server runs, the CLI hands its command to it over a Unix socket beside the data
 * directory and the lock file: `<IDP_DATA_DIR>.sock`, mode 0600 (only the user who runs the server
 * can connect), removed at shutdown and replaced at start when a crashed server left it behind.
 *
 * Protocol: newline-delimited JSON. The CLI sends one request line `{"argv": [...]}`; the server
 * answers with `{"stdout": "..."}` and `{"stderr": "..."}` lines in the order the command writes
 * them, then `{"exit": <code>}` and closes.
 */

export interface CliRequest {
  argv: string[];
}

export type CliReply = { stdout: string } | { stderr: string } | { exit: number };

/** Longest request line the server reads (an argv, never a body). */
export const MAX_REQUEST_BYTES = 64 * 1024;

// sockaddr_un.sun_path is 108 bytes on Linux and 104 on macOS, terminating NUL included.
const MAX_SOCKET_PATH = 103;

/** `<dataDir>.sock`, absolute. */
export function cliSocketFile(dataDir: string): string {
  return `${path.resolve(dataDir)}.sock`;
}

/**
 * The path to bind or connect to: the absolute one, or, when that is longer than a Unix socket
 * address allows, the same file relative to the working directory; undefined if neither fits.
 */
export function cliSocketAddress(dataDir: string, cwd = process.cwd()): string | undefined {
  const file = cliSocketFile(dataDir);
  if (Buffer.byteLength(file) <= MAX_SOCKET_PATH) return file;
  const relative = path.relative(cwd, file);
  return Buffer.byteLength(relative) <= MAX_SOCKET_PATH ? relative : undefined;
}

/** Whether the embedded database of this configuration lives on disk (a socket makes sense). */
export function servesCliSocket(config: { databaseUrl: string | undefined; dataDir: string }): boolean {
  return config.databaseUrl === undefined && !config.dataDir.startsWith('memory://');
}
