import crypto from 'node:crypto';
import { hash } from '@node-rs/argon2';
import pg from 'pg';
import { openDatabase } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { createLogger } from '../../src/observability/logger';

/**
 * Benchmark data (`npm run seed`, `npm run bench:scale`, `npm run chaos`), fast: every row is made
 * inside Postgres by `INSERT … SELECT … FROM generate_series(…)`, 100,000 rows a statement, each its
 * own transaction. Running it again adds only what is missing. Never for production: the seeded
 * clients' secrets are derived from a public seed.
 *
 * - Clients `seed-<n>`: scopes `read write`, audience `https://api.seed.example`; the secret of client
 *   id I is `seedClientSecret(I, seed)` = base64url(SHA-256("<seed>:<I>")), stored as SHA-256 of the
 *   secret like every real one (src/clients/secret.ts), so a benchmark can compute any client's secret.
 * - Users `user-<n>@seed.example`: all with the password `--password` under one argon2id hash
 *   computed here (the service's parameters); one in twenty in one of 10 tenants `seed-tenant-<k>`;
 *   created one per 31 s back over a year (millisecond timestamps, like the service's own).
 *   Plus 5 known users `known-<i>@seed.example` with passwords `known-password-<i>`, each its own hash.
 * - Audit events: a year of them, actors `schedule`, `cli`, `admin-token:<uuid>` (8), actions over
 *   clients, users, keys and tenants, targets the seeded clients and users.
 */

export interface SeedCounts {
  clients: number;
  users: number;
  audit: number;
}

export interface SeedOptions {
  /** Derives every seeded client's secret. */
  secretSeed: string;
  /** The password of every `user-<n>@seed.example`. */
  password: string;
  log?: (line: string) => void;
}

export const SEED_DEFAULTS = { secretSeed: 'idp-seed', password: 'seed-password-1' } as const;
export const SEED_AUDIENCE = 'https://api.seed.example';
export const SEED_TENANTS = 10;
const BATCH = 100_000;
/** argon2id with the service's parameters (src/users/passwords.ts): m = 19 MiB, t = 2, p = 1. */
const ARGON2_OPTIONS = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function seedClientId(n: number): string {
  return `seed-${n}`;
}

/** The secret of a seeded client: base64url(SHA-256("<seed>:<id>")), 43 characters, as the SQL below computes it. */
export function seedClientSecret(id: string, secretSeed: string = SEED_DEFAULTS.secretSeed): string {
  return crypto.createHash('sha256').update(`${secretSeed}:${id}`, 'utf8').digest('base64url');
}

export function seedUserEmail(n: number): string {
  return `user-${n}@seed.example`;
}

async function count(client: pg.Client, query: string): Promise<number> {
  return Number((await client.query<{ n: string }>(query)).rows[0]?.n ?? 0);
}

/** Inserts rows `from`..`to` in statements of BATCH rows; `statement(first, last)` makes one. */
async function inBatches(client: pg.Client, what: string, from: number, to: number, statement: (first: number, last: number) => [string, unknown[]], log: (line: string) => void): Promise<void> {
  const started = Date.now();
  for (let first = from; first <= to; first += BATCH) {
    const last = Math.min(to, first + BATCH - 1);
    const [text, values] = statement(first, last);
    await client.query(text, values);
    log(`  ${what}: ${last.toLocaleString('en')} of ${to.toLocaleString('en')} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
}

/** Seeds `databaseUrl` (migrating it first); returns the seconds each part took. */
export async function seed(databaseUrl: string, counts: SeedCounts, options: SeedOptions): Promise<Record<string, number>> {
  const log = options.log ?? ((line: string) => console.log(line));
  const timings: Record<string, number> = {};
  const handle = await openDatabase({ databaseUrl, dataDir: 'unused', logger: createLogger('warn') });
  try {
    await migrateToLatest(handle);
  } finally {
    await handle.close();
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    // The statements below are long on purpose; nothing else waits on these tables.
    await client.query("set statement_timeout = 0; set synchronous_commit = off; set client_min_messages = warning");

    let started = Date.now();
    for (let k = 1; k <= SEED_TENANTS; k++) {
      await client.query('insert into tenants (id, name) values ($1, $2) on conflict (id) do nothing', [`seed-tenant-${k}`, `Seed tenant ${k}`]);
    }
    const haveClients = await count(client, "select count(*) as n from oauth_clients where id like 'seed-%'");
    await inBatches(
      client,
      'clients',
      haveClients + 1,
      counts.clients,
      (first, last) => [
        `insert into oauth_clients (id, name, secret_hash, scopes, audiences, tenant_id, created_at, updated_at)
         select 'seed-' || g,
                'Seeded client ' || g,
                sha256(convert_to(translate(rtrim(encode(sha256(convert_to($3 || ':seed-' || g, 'UTF8')), 'base64'), '='), '+/', '-_'), 'UTF8')),
                '["read", "write"]'::jsonb,
                jsonb_build_array($4::text),
                null,
                date_trunc('milliseconds', now()) - g * interval '1 second',
                date_trunc('milliseconds', now()) - g * interval '1 second'
           from generate_series($1::int, $2::int) g`,
        [first, last, options.secretSeed, SEED_AUDIENCE],
      ],
      log,
    );
    timings.clients = (Date.now() - started) / 1000;

    started = Date.now();
    const passwordHash = await hash(options.password, ARGON2_OPTIONS);
    const haveUsers = await count(client, "select count(*) as n from users where email like 'user-%@seed.example'");
    await inBatches(
      client,
      'users',
      haveUsers + 1,
      counts.users,
      (first, last) => [
        `insert into users (id, email, password_hash, role, tenant_id, created_at, updated_at)
         select gen_random_uuid(),
                'user-' || g || '@seed.example',
                $3,
                'user',
                case when g % 20 = 0 then 'seed-tenant-' || (1 + (g / 20) % ${SEED_TENANTS}) end,
                date_trunc('milliseconds', now()) - g * interval '31 seconds 7 milliseconds',
                date_trunc('milliseconds', now()) - g * interval '31 seconds 7 milliseconds'
           from generate_series($1::int, $2::int) g`,
        [first, last, passwordHash],
      ],
      log,
    );
    for (let i = 1; i <= 5; i++) {
      await client.query(
        `insert into users (id, email, password_hash, created_at, updated_at)
         values (gen_random_uuid(), $1, $2, date_trunc('milliseconds', now()), date_trunc('milliseconds', now())) on conflict (email) do nothing`,
        [`known-${i}@seed.example`, await hash(`known-password-${i}`, ARGON2_OPTIONS)],
      );
    }
    timings.users = (Date.now() - started) / 1000;

    started = Date.now();
    const actors = ['schedule', 'cli', ...Array.from({ length: 8 }, () => `admin-token:${crypto.randomUUID()}`)];
    const actions = ['client.created', 'client.updated', 'client.secret_rotated', 'client.disabled', 'user.updated', 'session.revoked', 'key.created', 'key.promoted', 'key.deactivated', 'tenant.created', 'admin_token.issued', 'limit.cleared'];
    const haveAudit = await count(client, "select count(*) as n from audit_events where reason = 'seeded'");
    await inBatches(
      client,
      'audit events',
      haveAudit + 1,
      counts.audit,
      (first, last) => [
        `insert into audit_events (occurred_at, actor, action, target, reason, details)
         select date_trunc('milliseconds', now()) - g * interval '31 seconds 3 milliseconds',
                ($3::text[])[1 + g % ${actors.length}],
                ($4::text[])[1 + (g / 7) % ${actions.length}],
                case when g % 3 = 0 then 'seed-' || (1 + g % ${Math.max(1, counts.clients)}) else 'user-' || (1 + g % ${Math.max(1, counts.users)}) || '@seed.example' end,
                'seeded',
                '{}'::jsonb
           from generate_series($1::int, $2::int) g`,
        [first, last, actors, actions],
      ],
      log,
    );
    timings.audit = (Date.now() - started) / 1000;

    started = Date.now();
    await client.query('analyze');
    timings.analyze = (Date.now() - started) / 1000;
  } finally {
    await client.end();
  }
  return timings;
}
