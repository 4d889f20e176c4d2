import fs from 'node:fs';
import net from 'node:net';
import type { HostServices } from './context';
import { runCli } from './program';
import { cliSocketAddress, cliSocketFile, MAX_REQUEST_BYTES, servesCliSocket, type CliReply } from './socket';

/**
 * The server side of the CLI socket (src/cli/socket.ts): an embedded server runs the commands of
 * `idp` processes in-process, with the same handlers over its own database and services, because
 * only one process may open a PGlite data directory. Postgres needs none of it: every process opens
 * the database itself.
 */

/** What the server lends the commands, plus its key cache, re-read before the reply so the next request signs with the new key. */
export interface CliHost extends HostServices {
  keys: { refresh(): Promise<void> };
}

export interface CliSocketServer {
  /** The path the socket is bound to. */
  readonly address: string;
  /** Stops accepting, lets running commands finish (up to `graceMs`), removes the socket file. */
  close(graceMs?: number): Promise<void>;
}

const MAX_ARGS = 256;

/**
 * Starts the CLI socket of an embedded server; undefined on Postgres or in memory (nothing to
 * share), and when it cannot listen (logged: the server runs on, only `idp` must wait for it to stop).
 */
export async function serveCliSocket(host: CliHost): Promise<CliSocketServer | undefined> {
  if (!servesCliSocket(host.config)) return undefined;
  try {
    return await listen(host);
  } catch (error) {
    host.logger.warn({ err: (error as Error).message }, 'CLI socket not started: `idp` commands cannot run while this server does');
    return undefined;
  }
}

async function listen(host: CliHost): Promise<CliSocketServer | undefined> {
  const { config, logger } = host;
  const address = cliSocketAddress(config.dataDir);
  const file = cliSocketFile(config.dataDir);
  if (address === undefined) {
    logger.warn({ socket: file }, 'CLI socket path too long for a Unix socket: `idp` commands cannot run while this server does');
    return undefined;
  }
  // The server holds the data directory's lock, so a socket here was left by a server that died.
  const existing = fs.lstatSync(address, { throwIfNoEntry: false });
  if (existing && !existing.isSocket()) {
    logger.warn({ socket: file }, 'CLI socket path is taken by a file that is not a socket: `idp` commands cannot run while this server does');
    return undefined;
  }
  if (existing) fs.rmSync(address, { force: true });

  const running = new Set<Promise<void>>();
  const idle = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    idle.add(socket);
    socket.on('close', () => idle.delete(socket));
    const done = serve(socket, host, () => idle.delete(socket)).finally(() => running.delete(done));
    running.add(done);
  });
  // bind() creates the socket file synchronously inside listen(): under this umask it is never
  // reachable by another user, not even for an instant.
  const umask = process.umask(0o177);
  let listening: Promise<void>;
  try {
    listening = new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(umask);
  }
  await listening;
  fs.chmodSync(address, 0o600);
  server.on('error', (error) => logger.warn({ err: error.message }, 'CLI socket error'));
  logger.info({ socket: file }, 'CLI socket listening: `idp` commands run in this server while it holds the embedded database');

  return {
    address,
    async close(graceMs = 10_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // A connection that has not sent its command yet must not hold the close; running commands finish.
      for (const socket of idle) socket.destroy();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...running]), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      await closed;
      fs.rmSync(address, { force: true });
    },
  };
}

/** Reads one request, runs it, streams its output back; `started` is called when the command begins. */
async function serve(socket: net.Socket, host: CliHost, started: () => void): Promise<void> {
  socket.on('error', () => undefined); // a CLI that goes away mid-command: the command still completes
  const argv = await readRequest(socket);
  const send = (reply: CliReply) => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(reply)}\n`);
  };
  if (typeof argv === 'string') {
    send({ stderr: `idp: ${argv}\n` });
    send({ exit: 2 });
    socket.end();
    return;
  }
  started();
  const command = argv.filter((arg) => !arg.startsWith('-')).slice(0, 2).join(' ');
  let exit = 1;
  try {
    exit = await runCli(argv, { stdout: (text) => send({ stdout: text }), stderr: (text) => send({ stderr: text }), env: process.env }, { host });
  } catch (error) {
    send({ stderr: `idp: ${(error as Error).message.split('\n')[0]}\n` });
  } finally {
    // The key cache hears of a key change through NOTIFY; re-reading here as well means the reply
    // is sent only once the server signs with (and publishes) what the command changed.
    await host.keys.refresh();
    host.logger.info({ command, exit }, 'ran a CLI command');
    send({ exit });
    socket.end();
  }
}

/** The request's argv, or why it is refused. */
function readRequest(socket: net.Socket): Promise<string[] | string> {
  return new Promise((resolve) => {
    let buffered = '';
    socket.setEncoding('utf8');
    const onData = (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline < 0) {
        if (Buffer.byteLength(buffered) > MAX_REQUEST_BYTES) finish('request too large');
        return;
      }
      let request: unknown;
      try {
        request = JSON.parse(buffered.slice(0, newline));
      } catch {
        return finish('unreadable request');
      }
      const argv = (request as { argv?: unknown }).argv;
      if (!Array.isArray(argv) || argv.length > MAX_ARGS || !argv.every((arg) => typeof arg === 'string')) return finish('request without an argv');
      finish(argv as string[]);
    };
    const finish = (result: string[] | string) => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      resolve(result);
    };
    const onEnd = () => finish('request ended early');
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
  });
}
