import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './bench';

const run = promisify(execFile);

/**
 * A Postgres server of one's own, for fault tests and scripts/chaos.ts: `initdb` into a temporary
 * directory, `pg_ctl` on a free loopback port, its socket in that directory. It may be stopped,
 * restarted or killed without disturbing anything else on the machine (the shared server of
 * DATABASE_URL is never touched). `remove()` stops it and deletes the directory.
 */
export interface PrivatePostgres {
  port: number;
  /** A connection string to `database` on this server (default `postgres`). */
  url(database?: string): string;
  createDatabase(name: string): Promise<string>;
  /** `pg_ctl restart -m fast`: every connection is cut, the server is down for a moment, then back. */
  restart(): Promise<void>;
  /** `pg_ctl stop -m fast` (the first half of a restart; `start()` is the second). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** The server's log so far (for a failure message). */
  log(): string;
  remove(): Promise<void>;
}

/** The newest Postgres binaries installed (Debian's /usr/lib/postgresql/<major>/bin), or PG_BINDIR. */
function binDir(): string {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, 'bin', 'initdb'))) : [];
  const newest = majors.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error('no Postgres binaries under /usr/lib/postgresql/*/bin (set PG_BINDIR)');
  return path.join(root, newest, 'bin');
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-pg-'));
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  // initdb and postgres refuse to run as root: as root, run them as the postgres account.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await run('chown', ['-R', 'postgres:', dir]);
  const pgRun = (tool: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]) : run(path.join(bin, tool), args);

  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    // A test server: durability is not what is tested, speed of start-up is.
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
    '-c shared_buffers=32MB',
    '-c max_connections=60',
  ].join(' ');
  let started = false;
  const remove = async () => {
    if (started) await pgRun('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w']).catch(() => undefined);
    started = false;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await pgRun('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
    await pgRun('pg_ctl', ['start', '-D', data, '-l', logFile, '-w', '-t', '60', '-o', options]);
    started = true;
  } catch (error) {
    await remove();
    throw error;
  }
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    async createDatabase(name) {
      const admin = new pg.Client({ connectionString: url() });
      await admin.connect();
      try {
        await admin.query(`create database ${pg.escapeIdentifier(name)}`);
      } finally {
        await admin.end();
      }
      return url(name);
    },
    async restart() {
      // pg_ctl remembers the options the server was started with (postmaster.opts).
      await pgRun('pg_ctl', ['restart', '-D', data, '-m', 'fast', '-w', '-t', '60', '-l', logFile]);
    },
    async stop() {
      await pgRun('pg_ctl', ['stop', '-D', data, '-m', 'fast', '-w', '-t', '60']);
    },
    async start() {
      await pgRun('pg_ctl', ['start', '-D', data, '-l', logFile, '-w', '-t', '60', '-o', options]);
    },
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
    remove,
  };
}
