import fs from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql, type CompiledQuery, type PostgresCursor, type PostgresPool, type PostgresPoolClient } from 'kysely';
import type pg from 'pg';
import type { Logger } from '../observability/logger';
import type { Database } from './schema';

export type { Database } from './schema';

/** A notification handler; `payload` is the text given to `pg_notify`. */
export type NotificationHandler = (payload: string) => void;

/**
 * The database handle of one process: Kysely for queries, plus LISTEN/NOTIFY,
 * which Kysely does not cover and which each dialect does its own way.
 */
export interface DatabaseHandle {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Kysely<Database>;
  /** Subscribes to a channel. `onReconnect` runs after a lost listener connection is back (notifications may have been missed). */
  listen(channel: string, handler: NotificationHandler, onReconnect?: () => void): Promise<void>;
  /**
   * The rows of a statement marked by `prepared`, sent on this process's statement lane: one
   * connection of its own (application_name STATEMENT_LANE_APPLICATION_NAME), opened at first use and
   * again after it is lost, for the few statements a token request waits for (the client cache's
   * reads, the replay guard's insert) and the client cache's batched use writes. They skip Kysely and the pool's check-out and release, which
   * cost as much as the driver's own work for a statement of a few rows (docs/scale-and-faults.md
   * "Clients not in memory"). Statements queue on the lane in order; a lost connection fails the
   * ones on it. The lane runs primary-key statements only, so its connection disables sequential
   * scans (`enable_seqscan = off`): a generic plan made while a table was nearly empty (a seq scan of
   * one page is the cheaper probe then) must not keep scanning the table as it grows. PGlite runs them
   * through Kysely as any other.
   */
  laneRows<R>(statement: CompiledQuery<R>, parameters: readonly unknown[]): Promise<R[]>;
  /** Cheap reachability probe for /readyz. */
  ping(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** `application_name` of each process's one LISTEN connection (pg_stat_activity). */
export const LISTENER_APPLICATION_NAME = 'idp-listener';
/** `application_name` of each process's statement lane (DatabaseHandle.laneRows). */
export const STATEMENT_LANE_APPLICATION_NAME = 'idp-lane';

export interface DatabaseOptions {
  databaseUrl: string | undefined;
  /** PGlite data directory; `memory://` keeps it in memory (tests). */
  dataDir: string;
  logger: Logger;
  poolSize?: number;
}

const PREPARED = /^\/\* prepared:([a-z_]+) \*\/ /;

/**
 * A statement run so often that parsing and planning it each time would matter (the client cache's
 * reads and use records): on Postgres it is sent as a named prepared statement, parsed once per
 * connection, then only bound and executed; planned once too when Postgres keeps its generic plan
 * (a `= any($1)` lookup must send its keys through genericPlanKeys); PGlite runs it as it is. Only
 * for a statement whose text never varies (everything that varies is a parameter), under a name used
 * for nothing else, so that each connection holds at most one statement per name.
 */
export function prepared<R>(name: string, query: CompiledQuery<R>): CompiledQuery<R> {
  return { ...query, sql: `/* prepared:${name} */ ${query.sql}` };
}

/** The name `prepared` gave a statement; a statement without one is a programming error on either database. */
function preparedName(statement: CompiledQuery): string {
  const name = PREPARED.exec(statement.sql)?.[1];
  if (name === undefined) throw new Error('laneRows runs only statements marked by prepared()');
  return name;
}

/** The fewest values a key array of a prepared statement is sent with (see genericPlanKeys). */
const GENERIC_PLAN_KEYS = 10;

/**
 * The keys of a prepared `key = any($1)` lookup, padded with repeats of the first to at least
 * GENERIC_PLAN_KEYS values, so that Postgres keeps one generic plan instead of planning each
 * execution again. After five executions it keeps the generic plan only if that plan's estimated cost
 * is below the average of the custom ones; it estimates an array parameter as 10 values, so a lookup
 * usually sent 3 keys had cheaper custom plans and was planned again every time (~40 µs of Postgres
 * CPU each alone, measured, more beside a loaded worker). At 10 keys or more the two estimates are
 * equal but for the planning cost added to custom plans, and the generic plan wins. A repeated key
 * costs nothing: the index scan drops duplicate array keys, and the result is the same set of rows.
 */
export function genericPlanKeys(keys: readonly string[]): string[] {
  const padded = [...keys];
  const first = keys[0];
  if (first !== undefined) while (padded.length < GENERIC_PLAN_KEYS) padded.push(first);
  return padded;
}

/** The pool as Kysely sees it, sending the statements marked by `prepared` as named prepared statements. */
function preparingPool(pool: pg.Pool): PostgresPool {
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    // Kysely passes a cursor only to stream, which the service never does.
    const query = (text: string | PostgresCursor<unknown>, parameters: ReadonlyArray<unknown> = []) => {
      if (typeof text !== 'string') throw new Error('streaming query results is not supported');
      const name = PREPARED.exec(text)?.[1];
      return client.query(name === undefined ? { text, values: [...parameters] } : { name, text, values: [...parameters] });
    };
    // One implementation for the interface's two overloads, the cursor one refused above.
    return { query: query as unknown as PostgresPoolClient['query'], release: () => client.release() };
  };
  return {
    async connect() {
      const client = await pool.connect();
      let wrapper = wrapped.get(client);
      if (wrapper === undefined) wrapped.set(client, (wrapper = wrap(client)));
      return wrapper;
    },
    end: () => pool.end(),
  };
}

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  return options.databaseUrl === undefined ? openPglite(options) : openPostgres(options.databaseUrl, options);
}

export class DatabaseInUseError extends Error {
  readonly code = 'ERR_DATABASE_IN_USE';
}

/**
 * PGlite is one process's database: a second process opening the same directory would corrupt it.
 * A lock file next to the data directory turns that mistake into a clear refusal.
 */
function lockDataDir(dataDir: string): () => void {
  const lockFile = `${path.resolve(dataDir)}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(lockFile, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(lockFile, 'utf8'));
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
        throw new DatabaseInUseError(
          `the embedded database ${dataDir} is in use by process ${holder}; stop it first, or set DATABASE_URL so that several processes can share Postgres`,
        );
      }
      fs.rmSync(lockFile, { force: true }); // left behind by a process that died
    }
  }
  throw new DatabaseInUseError(`cannot lock the embedded database ${dataDir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function openPglite(options: DatabaseOptions): Promise<DatabaseHandle> {
  const inMemory = options.dataDir.startsWith('memory://');
  if (!inMemory) fs.mkdirSync(path.resolve(options.dataDir), { recursive: true });
  const unlock = inMemory ? () => undefined : lockDataDir(options.dataDir);
  let client: PGlite;
  let db: Kysely<Database>;
  try {
    // Loaded here, not at the top: a process on Postgres (the CLI above all) never pays for PGlite.
    const [{ PGlite }, { PGliteDialect }] = await Promise.all([import('@electric-sql/pglite'), import('kysely-pglite-dialect')]);
    client = await PGlite.create(inMemory ? undefined : path.resolve(options.dataDir));
    db = new Kysely<Database>({ dialect: new PGliteDialect(client) });
  } catch (error) {
    unlock();
    throw error;
  }
  return {
    kind: 'pglite',
    db,
    async listen(channel, handler) {
      await client.listen(channel, handler);
    },
    async laneRows<R>(statement: CompiledQuery<R>, parameters: readonly unknown[]): Promise<R[]> {
      preparedName(statement);
      return (await db.executeQuery<R>({ ...statement, parameters })).rows;
    },
    async ping() {
      return !client.closed;
    },
    async close() {
      await db.destroy();
      unlock();
    },
  };
}

async function openPostgres(databaseUrl: string, options: DatabaseOptions): Promise<DatabaseHandle> {
  const { logger } = options;
  // Loaded here, not at the top: a process on PGlite never pays for the Postgres driver.
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    // Without it a query on a dead connection can hang until TCP gives up.
    query_timeout: 15_000,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', (error) => logger.warn({ err: error.message }, 'database connection lost'));
  // A checked-out connection that the server ends between two statements (a restart, an operator's
  // pg_terminate_backend) emits 'error' on the client itself, where the pool's listener is not: without
  // one of its own, that event would end the process. The query that uses it next fails instead.
  pool.on('connect', (client) => client.on('error', (error) => logger.warn({ err: error.message }, 'database connection lost while in use')));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }) });

  const listeners: Array<{ channel: string; handler: NotificationHandler; onReconnect?: () => void }> = [];
  let listenClient: pg.Client | undefined;
  let closed = false;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let attempt = 0;

  // One dedicated connection carries every LISTEN; when it drops it is re-opened with backoff
  // and every subscriber is told, so that it can re-read what it may have missed.
  async function connectListener(isReconnect: boolean): Promise<void> {
    // Named, so that an operator (or a fault test) finds it in pg_stat_activity.
    const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000, application_name: LISTENER_APPLICATION_NAME });
    client.on('notification', (message) => {
      for (const l of listeners) if (l.channel === message.channel) l.handler(message.payload ?? '');
    });
    client.on('error', (error) => {
      logger.warn({ err: error.message }, 'notification connection lost; reconnecting');
      scheduleReconnect();
    });
    client.on('end', () => scheduleReconnect());
    await client.connect();
    for (const channel of new Set(listeners.map((l) => l.channel))) {
      await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    }
    listenClient = client;
    attempt = 0;
    if (isReconnect) {
      logger.info('notification connection restored');
      for (const l of listeners) l.onReconnect?.();
    }
  }

  function scheduleReconnect(): void {
    if (closed || reconnectTimer !== undefined) return;
    const stale = listenClient;
    listenClient = undefined;
    stale?.removeAllListeners();
    stale?.on('error', () => undefined);
    void stale?.end().catch(() => undefined);
    const delay = Math.min(10_000, 250 * 2 ** attempt++);
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      connectListener(true).catch((error: Error) => {
        logger.warn({ err: error.message, retryInMs: Math.min(10_000, 250 * 2 ** attempt) }, 'notification connection failed');
        scheduleReconnect();
      });
    }, delay);
    reconnectTimer.unref();
  }

  // The statement lane: opened at first use; dropped when lost, so that the next statement opens it again.
  let lane: Promise<pg.Client> | undefined;
  const openLane = (): Promise<pg.Client> => {
    const client = new pg.Client({
      connectionString: databaseUrl,
      connectionTimeoutMillis: 5_000,
      query_timeout: 15_000,
      application_name: STATEMENT_LANE_APPLICATION_NAME,
    });
    // A probe by primary key must stay an index probe whatever the table held when it was planned.
    const opened = client
      .connect()
      .then(() => client.query('set enable_seqscan = off'))
      .then(() => client);
    const drop = () => {
      if (lane === opened) lane = undefined;
    };
    // A lost connection fails the statements on it (their callers answer 503); the next one reconnects.
    client.on('error', (error) => {
      logger.warn({ err: error.message }, 'statement lane connection lost');
      drop();
      void client.end().catch(() => undefined);
    });
    client.on('end', drop);
    opened.catch(drop);
    return opened;
  };

  return {
    kind: 'postgres',
    db,
    async laneRows<R>(statement: CompiledQuery<R>, parameters: readonly unknown[]): Promise<R[]> {
      if (closed) throw new Error('the database handle is closed');
      const name = preparedName(statement);
      const client = await (lane ??= openLane());
      const result = await client.query<R & pg.QueryResultRow>({ name, text: statement.sql, values: [...parameters] });
      return result.rows;
    },
    async listen(channel, handler, onReconnect) {
      listeners.push({ channel, handler, onReconnect });
      if (listenClient === undefined && reconnectTimer === undefined) {
        await connectListener(false);
      } else if (listenClient !== undefined) {
        await listenClient.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
    },
    async ping(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      const probe = sql`select 1`.execute(db).then(
        () => true,
        () => false,
      );
      const result = await Promise.race([probe, timeout]);
      clearTimeout(timer);
      return result;
    },
    async close() {
      closed = true;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      const client = listenClient;
      listenClient = undefined;
      client?.removeAllListeners();
      client?.on('error', () => undefined);
      await client?.end().catch(() => undefined);
      const openedLane = lane;
      lane = undefined;
      await openedLane?.then((c) => c.end()).catch(() => undefined);
      await db.destroy();
    },
  };
}

/** Postgres unreachable at start: retry with backoff, one log line per attempt. */
export async function openDatabaseWithRetry(options: DatabaseOptions & { logger: Logger }, maxAttempts = Infinity): Promise<DatabaseHandle> {
  for (let attempt = 1; ; attempt++) {
    const handle = await openDatabase(options);
    if (await handle.ping(5_000)) return handle;
    await handle.close();
    const delayMs = Math.min(30_000, 500 * 2 ** (attempt - 1));
    if (attempt >= maxAttempts) throw new Error('database unreachable');
    options.logger.error({ attempt, retryInMs: delayMs }, `database unreachable (attempt ${attempt}); retrying in ${Math.round(delayMs / 1000)}s`);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}
