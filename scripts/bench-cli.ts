import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { argument, median, scratchDatabase } from './lib/bench';

const run = promisify(execFile);

/**
 * `npm run bench:cli [-- --runs 10]`
 *
 * Wall time of `idp keys list --json` as an operator or a script pays it, on Postgres (docs/operating.md "The admin CLI":
 * every command answers within a second): `npm run -s idp -- keys list --json` (npm, the staleness
 * check, the CLI) and the CLI alone, `node dist/src/cli/main.js keys list --json`. Over a throw-away
 * database on DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432/postgres), created
 * and dropped here, with two keys and a fresh MEK. Runs alternate so that drift on the machine hits
 * both alike; one warm-up call of each is not counted.
 */
const TARGETS = { npm: 1_000, direct: 500 };

async function main(): Promise<void> {
  const runs = argument('runs', 10);
  const root = path.resolve(__dirname, '..', '..');
  const database = await scratchDatabase(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', 'idp_bench_cli');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: database.url,
    IDP_MEK: `bench:${crypto.randomBytes(32).toString('base64')}`,
    IDP_LOG_LEVEL: 'silent',
  };
  const commands = {
    npm: { file: 'npm', args: ['run', '-s', 'idp', '--', 'keys', 'list', '--json'] },
    direct: { file: process.execPath, args: [path.join(root, 'dist/src/cli/main.js'), 'keys', 'list', '--json'] },
  };
  const timeOne = async (which: keyof typeof commands): Promise<number> => {
    const { file, args } = commands[which];
    const started = process.hrtime.bigint();
    const { stdout } = await run(file, args, { cwd: root, env });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const keys = JSON.parse(stdout) as unknown[];
    if (keys.length < 2) throw new Error(`${which}: expected two keys, got ${stdout}`);
    return ms;
  };
  const times: Record<keyof typeof commands, number[]> = { npm: [], direct: [] };
  try {
    await run(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'keys', 'check'], { cwd: root, env });
    await timeOne('npm');
    await timeOne('direct');
    for (let i = 0; i < runs; i++) {
      times.npm.push(await timeOne('npm'));
      times.direct.push(await timeOne('direct'));
    }
  } finally {
    await database.drop();
  }
  const [load1] = os.loadavg();
  console.log(`idp keys list --json on Postgres, ${runs} calls each, alternating; ${os.cpus().length} CPUs, load average ${load1?.toFixed(2)}`);
  for (const which of ['npm', 'direct'] as const) {
    const m = median(times[which]);
    const label = which === 'npm' ? 'npm run -s idp -- keys list --json' : 'node dist/src/cli/main.js keys list --json';
    const sorted = [...times[which]].sort((a, b) => a - b);
    console.log(
      `${label.padEnd(44)} median ${m.toFixed(0).padStart(5)} ms   min ${sorted[0]?.toFixed(0)} ms   max ${sorted.at(-1)?.toFixed(0)} ms   target ≤ ${TARGETS[which]} ms: ${m <= TARGETS[which] ? 'met' : 'MISSED'}`,
    );
  }
}

main().catch((error: Error) => {
  console.error(`bench-cli: ${error.message}`);
  process.exit(1);
});
