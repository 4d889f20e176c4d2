import { SEED_DEFAULTS, seed } from './lib/seed';

/**
 * `npm run seed -- --clients 100000 --users 1000000 --audit 1000000 [--secret-seed S] [--password P]`
 *
 * Fills the Postgres database of DATABASE_URL (migrated first) with benchmark data (scripts/lib/seed.ts):
 * clients `seed-<n>` whose secret is base64url(SHA-256("<secret seed>:<client id>")), users
 * `user-<n>@seed.example` with one password, a year of audit events. Refused with NODE_ENV=production.
 */

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a whole number`);
  return value;
}

function textFlag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

async function main(): Promise<void> {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL must name the Postgres database to fill');
  if (process.env.NODE_ENV === 'production') throw new Error('refused with NODE_ENV=production: seeded clients have secrets derived from a public seed');
  const counts = { clients: flag('clients', 1_000), users: flag('users', 10_000), audit: flag('audit', 10_000) };
  const options = { secretSeed: textFlag('secret-seed', SEED_DEFAULTS.secretSeed), password: textFlag('password', SEED_DEFAULTS.password) };
  console.log(`seeding ${new URL(databaseUrl).pathname.slice(1)}: ${counts.clients} clients, ${counts.users} users, ${counts.audit} audit events`);
  const started = Date.now();
  const timings = await seed(databaseUrl, counts, options);
  console.log(
    `done in ${((Date.now() - started) / 1000).toFixed(1)} s (${Object.entries(timings)
      .map(([what, s]) => `${what} ${s.toFixed(1)} s`)
      .join(', ')}); clients' secrets: base64url(SHA-256("${options.secretSeed}:<client id>")); users' password: ${options.password}`,
  );
}

main().catch((error: Error) => {
  console.error(`seed: ${error.message}`);
  process.exit(1);
});
