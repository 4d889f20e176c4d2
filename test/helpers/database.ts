import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase, type DatabaseHandle } from '../../src/db';
import { createLogger } from '../../src/observability/logger';

/** True when the suite runs against the real Postgres of DATABASE_URL, false on embedded PGlite. */
export const usingPostgres = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '';

const silent = createLogger('silent');

/**
 * A fresh, empty database for one test file, dropped afterwards.
 * - Postgres: a new database on the server of DATABASE_URL; every `open()` is a new pool
 *   (a separate "instance").
 * - PGlite: in memory, or on disk with `onDisk` (for child processes); every `open()` returns the
 *   one shared handle, since PGlite is one process's database.
 */
export interface TestDatabase {
  /** Environment for a child process or the CLI: DATABASE_URL or IDP_DATA_DIR. */
  env: Record<string, string>;
  databaseUrl: string | undefined;
  dataDir: string;
  open(): Promise<DatabaseHandle>;
  /** PGlite on disk: release the in-process handle so a child process may open the directory. */
  release(): Promise<void>;
  drop(): Promise<void>;
}

export async function createTestDatabase(options: { onDisk?: boolean } = {}): Promise<TestDatabase> {
  if (usingPostgres) return createPostgresDatabase();
  return createPgliteDatabase(options.onDisk === true);
}

async function createPostgresDatabase(): Promise<TestDatabase> {
  const adminUrl = process.env.DATABASE_URL as string;
  const name = `idp_test_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  const handles: DatabaseHandle[] = [];
  return {
    env: { DATABASE_URL: databaseUrl },
    databaseUrl,
    dataDir: 'unused',
    async open() {
      const handle = await openDatabase({ databaseUrl, dataDir: 'unused', logger: silent, poolSize: 5 });
      handles.push(handle);
      return handle;
    },
    async release() {
      await Promise.all(handles.splice(0).map((h) => h.close()));
    },
    async drop() {
      await Promise.all(handles.splice(0).map((h) => h.close()));
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    },
  };
}

async function createPgliteDatabase(onDisk: boolean): Promise<TestDatabase> {
  const dir = onDisk ? fs.mkdtempSync(path.join(os.tmpdir(), 'idp-pglite-')) : undefined;
  const dataDir = dir ? path.join(dir, 'data') : 'memory://';
  let shared: DatabaseHandle | undefined;
  let sharedClose: (() => Promise<void>) | undefined;
  return {
    env: { IDP_DATA_DIR: dataDir },
    databaseUrl: undefined,
    dataDir,
    async open() {
      if (!shared) {
        const handle = await openDatabase({ databaseUrl: undefined, dataDir, logger: silent });
        // Every "instance" shares the one handle; only drop() or release() closes it.
        shared = { ...handle, close: async () => undefined };
        sharedClose = () => handle.close();
      }
      return shared;
    },
    async release() {
      await sharedClose?.();
      shared = undefined;
      sharedClose = undefined;
    },
    async drop() {
      await sharedClose?.();
      shared = undefined;
      sharedClose = undefined;
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
