import net from 'node:net';
import { CliError, type CliIo } from './context';
import type { CliReply, CliRequest } from './socket';

/** The server ran the command: its exit code. */
export interface Forwarded {
  exitCode: number;
}

/** Nobody answers on the socket (no server, a stale socket, or a server still starting). */
export interface NotAnswering {
  reason: string;
}

/**
 * Hands `argv` to the server listening on `address` and copies what the command writes to `io`,
 * in order. Resolves with the command's exit code, or with NotAnswering when the socket does not
 * accept the connection (then nothing ran). A server that goes away in the middle of a command is
 * a CliError: the command may or may not have taken effect.
 */
export function forwardToServer(address: string, argv: readonly string[], io: CliIo): Promise<Forwarded | NotAnswering> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path: address });
    let connected = false;
    let settled = false;
    let buffered = '';
    const settle = (outcome: Forwarded | NotAnswering | CliError) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (outcome instanceof CliError) reject(outcome);
      else resolve(outcome);
    };
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      const request: CliRequest = { argv: [...argv] };
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        let reply: CliReply;
        try {
          reply = JSON.parse(line) as CliReply;
        } catch {
          return settle(new CliError(`the server sent an unreadable reply on ${address}`));
        }
        if ('stdout' in reply) io.stdout(reply.stdout);
        else if ('stderr' in reply) io.stderr(reply.stderr);
        else if ('exit' in reply) return settle({ exitCode: reply.exit });
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (!connected) {
        if (error.code === 'EACCES' || error.code === 'EPERM') {
          return settle(new CliError(`cannot connect to the server's CLI socket ${address}: permission denied (only the user that runs the server may use it)`));
        }
        return settle({ reason: `${error.code ?? error.message} on ${address}` });
      }
      settle(new CliError(`lost the connection to the server during the command (${error.code ?? error.message}); it may or may not have taken effect`));
    });
    socket.on('close', () => {
      if (!connected) return settle({ reason: `no answer on ${address}` });
      settle(new CliError('the server closed the connection before the command finished; it may or may not have taken effect'));
    });
  });
}
