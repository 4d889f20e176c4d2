import { fork, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const LIFECYCLE_CHILD = path.join(ROOT, 'test/fixtures/lifecycle-child.js');
const SERVER_MAIN = path.join(ROOT, 'dist/src/main.js');

/**
 * The environment of a child: only what it is given plus what node needs, so that the parent's
 * DATABASE_URL (the admin database) or IDP_* never leak into it by accident.
 */
export function childEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  // Many servers run at once: each management listener takes a free port unless a test names one.
  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, IDP_METRICS_PORT: '0' };
  for (const [name, value] of Object.entries(env)) if (value !== undefined) base[name] = value;
  return base;
}

/** A child process whose output is kept, so that a test can assert on its log lines. */
export interface Child {
  process: ChildProcess;
  pid: number;
  output(): string;
  /** Resolves with the exit code (or the signal name) once the process has ended. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

const running = new Set<ChildProcess>();

function track(child: ChildProcess): Child {
  running.add(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? (signal as string));
    });
  });
  return {
    process: child,
    pid: child.pid as number,
    output: () => output,
    exited,
    kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Kills every child still running (afterAll/afterEach), and waits until they are gone. */
export async function killAllChildren(): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/**
 * Sends `signal` and waits up to `graceMs` for the exit; a child still running then is killed and
 * reported as 'did not exit', so that a test asserting a clean stop fails clearly.
 */
export async function stopChild(child: Child, signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<number | string> {
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'did not exit'>((resolve) => {
    timer = setTimeout(() => resolve('did not exit'), graceMs);
  });
  const result = await Promise.race([child.exited, timedOut]);
  clearTimeout(timer);
  if (result === 'did not exit') {
    child.kill('SIGKILL');
    await child.exited;
  }
  return result;
}

export type ChildMessage =
  | { type: 'ready'; pid: number }
  | { type: 'armed' }
  | { type: 'in-transition' }
  | { type: 'result'; instance: string; changes: Array<{ action: string; kid: string }>; alreadyRotated: boolean }
  | { type: 'error'; instance: string; message: string };

/** A lifecycle instance in its own OS process (test/fixtures/lifecycle-child.js). */
export interface LifecycleChild extends Child {
  send(message: Record<string, unknown>): void;
  /** The next message of this type (messages are queued, none is lost between two calls). */
  next<T extends ChildMessage['type']>(type: T, timeoutMs?: number): Promise<Extract<ChildMessage, { type: T }>>;
}

export async function forkLifecycleChild(env: Record<string, string | undefined>): Promise<LifecycleChild> {
  const child = track(fork(LIFECYCLE_CHILD, [], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }));
  const inbox: ChildMessage[] = [];
  const waiters: Array<() => void> = [];
  child.process.on('message', (message: ChildMessage) => {
    inbox.push(message);
    waiters.splice(0).forEach((wake) => wake());
  });
  child.process.on('exit', () => waiters.splice(0).forEach((wake) => wake()));
  const lifecycleChild: LifecycleChild = {
    ...child,
    send: (message) => child.process.send(message),
    async next(type, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const index = inbox.findIndex((m) => m.type === type || m.type === 'error');
        if (index >= 0) {
          const [message] = inbox.splice(index, 1);
          if (message?.type === 'error' && type !== 'error') throw new Error(`child ${child.pid} failed: ${message.message}`);
          return message as Extract<ChildMessage, { type: typeof type }>;
        }
        if (child.process.exitCode !== null || child.process.signalCode !== null) {
          throw new Error(`child ${child.pid} exited while waiting for "${type}":\n${child.output()}`);
        }
        if (Date.now() > deadline) throw new Error(`child ${child.pid} sent no "${type}" within ${timeoutMs} ms:\n${child.output()}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 100);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
  await lifecycleChild.next('ready', 30_000);
  return lifecycleChild;
}

/** The compiled server, `node dist/src/main.js`, with exactly the given environment. */
export function spawnServer(env: Record<string, string | undefined>): Child {
  return track(spawn(process.execPath, [SERVER_MAIN], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** script(1) of util-linux: runs a command on a pseudo-terminal, as a person's terminal would. */
export const SCRIPT = '/usr/bin/script';

/**
 * The compiled server on a terminal (a pty, through script(1)), as `npm start` in a person's
 * terminal: its output is what the terminal would show; `interrupt()` is Ctrl-C at that terminal.
 */
export function spawnServerOnTerminal(env: Record<string, string | undefined>): Child & { interrupt(): void } {
  const child = track(spawn(SCRIPT, ['-qfc', `${process.execPath} ${SERVER_MAIN}`, '/dev/null'], { env: childEnv(env), stdio: ['pipe', 'pipe', 'pipe'] }));
  return { ...child, interrupt: () => child.process.stdin?.write('\x03') };
}

/** A port free right now (the OS picks it; the tiny race until the child binds it is acceptable). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Polls `probe` until it returns a value other than undefined, or throws after `timeoutMs` with
 * `describe()` of the last state: the one way these tests wait for something to become true.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      throw new Error(`not within ${timeoutMs} ms: ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** GET with a per-request timeout: a status and a parsed body, or an error (connection refused). */
export async function getJson(url: string, timeoutMs = 2_000): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body };
}

export interface Jwks {
  keys: Array<{ kid: string }>;
}

export async function jwksKids(baseUrl: string): Promise<string[]> {
  const { status, body } = await getJson(`${baseUrl}/.well-known/jwks.json`);
  if (status !== 200) throw new Error(`JWKS answered ${status}`);
  return (body as Jwks).keys.map((k) => k.kid).sort();
}

/** Lifecycle settings of the child-process tests: hour-long rotations driven by a fake clock. */
export const LIFECYCLE_ENV = {
  NODE_ENV: 'test',
  IDP_KEY_ROTATION_INTERVAL: '1h',
  IDP_KEY_PREPUBLISH: '10m',
  IDP_JWKS_MAX_AGE: '60',
  IDP_KEY_RETENTION: '30d',
};
