import request from 'supertest';
import { loadConfig } from '../../src/config';
import { MalformedPasswordHash, PasswordHashing, PasswordHashingBusy } from '../../src/users/passwords';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { freshEmail, signUp, testEnv } from './support';

describe('password hashing under a bounded concurrency, on low-priority threads (docs/security.md "Abuse limits and the threat model"', () => {
  it('runs at most `concurrency` argon2 hashes at once, queues `queue` more, refuses the rest at once', async () => {
    const hashing = new PasswordHashing({ concurrency: 2, queue: 1 });
    const started = Array.from({ length: 6 }, (_, i) => hashing.hash(`password number ${i}`));
    expect(hashing.load).toEqual({ running: 2, waiting: 1 });
    const results = await Promise.allSettled(started);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused).toHaveLength(3);
    for (const r of refused) expect(r.reason).toBeInstanceOf(PasswordHashingBusy);
    expect(hashing.load).toEqual({ running: 0, waiting: 0 });
    // The hashes are real argon2id and verify.
    const hash = (results[0] as PromiseFulfilledResult<string>).value;
    expect(hash).toMatch(/^\$argon2id\$/);
    expect(await hashing.verify(hash, 'password number 0')).toBe(true);
    expect(await hashing.verify(hash, 'password number 1')).toBe(false);
    await expect(hashing.verify('not a hash', 'x')).rejects.toBeInstanceOf(MalformedPasswordHash);
    await hashing.close();
  });

  it('a hashing thread that dies fails its job and leaves the pool; the next hash runs on a new thread', async () => {
    const hashing = new PasswordHashing({ concurrency: 1, queue: 4 });
    await hashing.hash('warm up the one thread');
    // The real thread, ended from outside as a crash would end it.
    const threads = (hashing as unknown as { threads: Array<{ terminate(): Promise<number> }> }).threads;
    expect(threads).toHaveLength(1);
    const running = hashing.hash('in flight when the thread dies');
    const waiting = hashing.hash('waiting for the slot');
    await threads[0]!.terminate();
    await expect(running).rejects.toThrow(/exited/);
    expect(await waiting).toMatch(/^\$argon2id\$/);
    expect(await hashing.verify(await hashing.hash('after'), 'after')).toBe(true);
    expect(hashing.load).toEqual({ running: 0, waiting: 0 });
    await hashing.close();
  });

  describe('over HTTP, with no room to queue', () => {
    let database: TestDatabase;
    let server: TestServer;

    beforeAll(async () => {
      database = await createTestDatabase();
      const env = testEnv(database, { IDP_PASSWORD_HASH_CONCURRENCY: '1', IDP_PASSWORD_HASH_QUEUE: '0' });
      server = await startTestServer(loadConfig(env), await database.open());
    });
    afterAll(async () => {
      await server?.close();
      await database?.drop();
    });

    it('a registered email is refused before any hashing: 409 while every hashing slot is taken, when a new sign-up gets 503', async () => {
      const { user } = await signUp(server.url);
      // Keep the one slot busy: each hash starts in the microtask after the last, so no request sees it free.
      let busy = true;
      const hog = (async () => {
        while (busy) await server.services.passwords.hash('keeps the slot busy');
      })();
      try {
        const fresh = await request(server.url).post('/auth/v1/signup').send({ email: freshEmail(), password: 'correct horse battery' });
        expect([fresh.status, fresh.body.error, fresh.headers['retry-after']]).toEqual([503, 'temporarily_unavailable', '1']);
        const duplicate = await request(server.url).post('/auth/v1/signup').send({ email: user.email, password: 'another password' });
        expect([duplicate.status, duplicate.body.error]).toEqual([409, 'user_already_exists']);
      } finally {
        busy = false;
        await hog;
      }
    });

    it('a saturated hasher answers 503 with Retry-After, never a 500', async () => {
      const { user } = await signUp(server.url);
      const signIns = Array.from({ length: 8 }, () => request(server.url).post('/auth/v1/token').send({ email: user.email, password: 'wrong password' }));
      const duplicate = request(server.url).post('/auth/v1/signup').send({ email: user.email, password: 'another password' });
      const [dup, ...answers] = await Promise.all([duplicate, ...signIns]);
      // The duplicate needs no hash, so even with every slot taken it gets its 409.
      expect(dup.status).toBe(409);
      expect(dup.body.error).toBe('user_already_exists');
      const statuses = answers.map((r) => r.status);
      expect(statuses.every((status) => status === 400 || status === 503)).toBe(true);
      for (const busy of answers.filter((r) => r.status === 503)) {
        expect(busy.body.error).toBe('temporarily_unavailable');
        expect(busy.headers['retry-after']).toBe('1');
      }
      // Once the flood is over, sign-in works.
      expect((await request(server.url).post('/auth/v1/token').send({ email: user.email, password: 'correct horse battery' })).status).toBe(200);
      expect((await request(server.url).post('/auth/v1/signup').send({ email: freshEmail(), password: 'correct horse battery' })).status).toBe(201);
    });
  });
});
