import request from 'supertest';
import { runCli } from '../../src/cli/program';
import type { DatabaseHandle } from '../../src/db';
import { testMek } from '../helpers/context';
import { matchesOpenApi } from '../helpers/openapi';
import type { TestDatabase } from '../helpers/database';

/** The environment shared by the servers and the CLI of one test file (same MEK, same database). */
export function testEnv(database: TestDatabase, extra: Record<string, string> = {}): Record<string, string> {
  return { NODE_ENV: 'test', IDP_LOG_LEVEL: 'silent', IDP_ISSUER: 'http://idp.test', IDP_MEK: testMek(), ...database.env, ...extra };
}

/** Runs the real CLI in-process; returns exit code and output. */
export async function cli(env: Record<string, string>, handle: DatabaseHandle, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env }, { handle });
  return { code, stdout, stderr };
}

/** `idp admin-token issue ... --json` → the token. */
export async function adminToken(env: Record<string, string>, handle: DatabaseHandle, ...args: string[]): Promise<{ id: string; token: string }> {
  const result = await cli(env, handle, 'admin-token', 'issue', ...args, '--json');
  if (result.code !== 0) throw new Error(`admin-token issue failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as { id: string; token: string };
}

export interface SignedIn {
  access_token: string;
  refresh_token: string;
  user: { id: string; email: string };
}

let counter = 0;
/** A fresh address per call, so tests in one file do not share accounts or limits. */
export function freshEmail(tag = 'user'): string {
  counter += 1;
  return `${tag}-${counter}-${process.pid}@example.com`;
}

export async function signUp(url: string, email = freshEmail(), password = 'correct horse battery'): Promise<SignedIn> {
  const res = await request(url).post('/auth/v1/signup').send({ email, password }).expect(matchesOpenApi);
  if (res.status !== 201) throw new Error(`sign-up failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as SignedIn;
}

export async function signIn(url: string, email: string, password = 'correct horse battery'): Promise<SignedIn> {
  const res = await request(url).post('/auth/v1/token').send({ email, password }).expect(matchesOpenApi);
  if (res.status !== 200) throw new Error(`sign-in failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as SignedIn;
}
