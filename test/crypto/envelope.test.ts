import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { sql } from 'kysely';
import { openPrivateKey, EnvelopeError } from '../../src/crypto/envelope';
import { KeyRingMekProvider, MekError, parseKeyRing } from '../../src/crypto/mek';
import type { DatabaseHandle } from '../../src/db';
import { envelopeOf, listKeys } from '../../src/keys/repository';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import { buildLifecycle, compose as startServices } from '../../src/compose';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { testConfig, testMek } from '../helpers/context';

const silent = createLogger('silent');
const ring = (text: string) => new KeyRingMekProvider(parseKeyRing(text, 'test'));

describe('MEK key ring', () => {
  it('parses id:base64 entries separated by commas or lines, with comments', () => {
    const a = crypto.randomBytes(32).toString('base64');
    const b = crypto.randomBytes(32).toString('base64url');
    const parsed = parseKeyRing(`# primary first\nnew-1:${a}\nold.0:${b}  # still decrypts`, 'file');
    expect([...parsed.keys()]).toEqual(['new-1', 'old.0']);
    expect(parseKeyRing(`x:${a},y:${b}`, 'env').get('y')).toEqual(Buffer.from(b, 'base64url'));
  });

  it.each([
    ['', 'the key ring is empty'],
    ['nocolon', 'is not "id:base64key"'],
    ['bad id!:AAAA', 'is not "id:base64key"'],
    [`k:${Buffer.alloc(16).toString('base64')}`, 'is 16 bytes; a MEK is 32 random bytes'],
    ['k:***', 'is not base64'],
    [`k:${Buffer.alloc(32).toString('base64')},k:${Buffer.alloc(32).toString('base64')}`, 'appears twice'],
  ])('refuses a malformed ring %j with a clear message that never echoes a key', (text, message) => {
    let error: unknown;
    try {
      parseKeyRing(text, 'IDP_MEK');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MekError);
    expect((error as Error).message).toContain(message);
    expect((error as Error).message.startsWith('IDP_MEK: ')).toBe(true);
    expect((error as Error).message).not.toContain('AAAAAAAAAAAA');
  });
});

describe('signing keys at rest', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const mekText = testMek('primary');

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    const services = await startServices({ config: testConfig(database, { IDP_MEK: mekText }), logger: silent, metrics: createMetrics(), handle });
    await services.lifecycle.rotate('test', { force: true });
    await services.close();
  });
  afterAll(async () => {
    await database.drop();
  });

  it('stores no private key in clear anywhere in the database', async () => {
    const mek = ring(mekText);
    const rows = await listKeys(handle.db);
    const live = rows.filter((r) => envelopeOf(r));
    expect(live.length).toBe(3);
    // Everything the database holds, as text: every row of every table of ours.
    const tables = await sql<{ tablename: string }>`select tablename from pg_tables where schemaname = 'public'`.execute(handle.db);
    let dump = '';
    for (const { tablename } of tables.rows) {
      const result = await sql<{ row: string }>`select row_to_json(t)::text as row from ${sql.table(tablename)} t`.execute(handle.db);
      dump += result.rows.map((r) => r.row).join('\n');
    }
    if (usingPostgres && database.databaseUrl) {
      try {
        dump += execFileSync('pg_dump', ['--data-only', database.databaseUrl], { encoding: 'utf8' });
      } catch {
        // pg_dump of another major version may refuse; the row scan above already covers every table.
      }
    }
    expect(dump).not.toMatch(/PRIVATE KEY/);
    for (const row of live) {
      const der = await openPrivateKey(mek, envelopeOf(row)!, row.kid, row.purpose);
      const jwk = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'jwk' });
      for (const secret of [jwk.d!, jwk.p!, jwk.q!]) {
        expect(dump).not.toContain(secret);
        const hex = Buffer.from(secret, 'base64url').toString('hex');
        expect(dump).not.toContain(hex.slice(0, 64));
      }
      expect(dump).not.toContain(der.toString('base64').slice(0, 80));
      expect(dump).not.toContain(der.toString('hex').slice(100, 200));
    }
  });

  it('refuses to start with a key ring that lacks the MEK of a stored key, naming it, and changes nothing', async () => {
    const before = await listKeys(handle.db);
    const config = testConfig(database, { IDP_MEK: testMek('someone-else') });
    const error = await startServices({ config, logger: silent, metrics: createMetrics(), handle }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvelopeError);
    expect((error as Error).message).toContain('MEK "primary"');
    expect((error as Error).message).toContain('not in the key ring');
    expect(await listKeys(handle.db)).toEqual(before);
  });

  it('refuses the right MEK id with the wrong key bytes, naming the MEK id and both causes', async () => {
    const before = await listKeys(handle.db);
    const config = testConfig(database, { IDP_MEK: testMek('primary') });
    const error = await buildLifecycle({ config, logger: silent, metrics: createMetrics(), handle }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvelopeError);
    expect((error as Error).message).toMatch(
      /^signing key \S+: private key does not decrypt \(the key ring's key for MEK "primary" does not open this row: wrong key for this id, or the row was altered\)$/,
    );
    expect((error as Error).message).not.toMatch(/tampered|copied from another row/);
    expect(await listKeys(handle.db)).toEqual(before);
  });

  it('says the row was altered when the MEK opens the data key but the private key does not decrypt', async () => {
    const mek = ring(mekText);
    const [row] = (await listKeys(handle.db)).filter((r) => envelopeOf(r));
    const envelope = envelopeOf(row!)!;
    const flipped = Buffer.from(envelope.ciphertext);
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] as number) ^ 1;
    await expect(openPrivateKey(mek, { ...envelope, ciphertext: flipped }, row!.kid, row!.purpose)).rejects.toThrow(
      `signing key ${row!.kid}: private key does not decrypt (the data key opens under MEK "primary" but the encrypted private key does not: the row was altered)`,
    );
  });

  it('does not decrypt a ciphertext copied onto another row', async () => {
    const mek = ring(mekText);
    const [a, b] = (await listKeys(handle.db)).filter((r) => envelopeOf(r));
    const stolen = envelopeOf(a!)!;
    await expect(openPrivateKey(mek, stolen, b!.kid, b!.purpose)).rejects.toThrow(
      `signing key ${b!.kid}: private key does not decrypt (the key ring's key for MEK "primary" does not open this row: wrong key for this id, or the row was altered)`,
    );
    await expect(openPrivateKey(mek, stolen, a!.kid, 'another-purpose')).rejects.toBeInstanceOf(EnvelopeError);
    // The same through the database: the start-up check names the row, and restoring it heals.
    const original = await handle.db.selectFrom('signing_keys').selectAll().where('kid', '=', b!.kid).executeTakeFirstOrThrow();
    const move = (ciphertext: Uint8Array | null, wrapped: Uint8Array | null) =>
      handle.db.updateTable('signing_keys').set({ encrypted_private_key: ciphertext, wrapped_data_key: wrapped }).where('kid', '=', b!.kid).execute();
    const config = testConfig(database, { IDP_MEK: mekText });
    await move(stolen.ciphertext, stolen.wrappedDataKey);
    try {
      await expect(buildLifecycle({ config, logger: silent, metrics: createMetrics(), handle })).rejects.toThrow(`signing key ${b!.kid}`);
    } finally {
      await move(original.encrypted_private_key, original.wrapped_data_key);
    }
    await expect(buildLifecycle({ config, logger: silent, metrics: createMetrics(), handle })).resolves.toBeDefined();
  });

  it('keeps working after `mek rewrap` to a new primary and removal of the old MEK', async () => {
    const newMek = testMek('next-mek');
    const both = testConfig(database, { IDP_MEK: `${newMek},${mekText}` });
    const { lifecycle } = await buildLifecycle({ config: both, logger: silent, metrics: createMetrics(), handle });
    expect(await lifecycle.rewrap('test')).toBe(3);
    expect(await lifecycle.rewrap('test')).toBe(0);
    expect((await listKeys(handle.db)).filter((r) => r.mek_id !== null).every((r) => r.mek_id === 'next-mek')).toBe(true);

    const onlyNew = testConfig(database, { IDP_MEK: newMek });
    const services = await startServices({ config: onlyNew, logger: silent, metrics: createMetrics(), handle });
    const token = await services.sign({ sub: 'x' }, 'JWT');
    expect(token.split('.')).toHaveLength(3);
    await services.close();
    // The old ring alone no longer opens anything.
    await expect(buildLifecycle({ config: testConfig(database, { IDP_MEK: mekText }), logger: silent, metrics: createMetrics(), handle })).rejects.toThrow(
      /MEK "next-mek"/,
    );
  });
});
