import cluster from 'node:cluster';
import { configWarnings, ConfigError, loadConfig, type Config } from './config';
import { createLogger, terminalDestination, type Logger } from './observability/logger';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { clusterScraper, createMetrics, joinClusterMetrics, startMetricsListener, type Metrics } from './observability/metrics';
import { startScheduler, type Scheduler } from './scheduler';
import { compose, createServer, type Composition } from './compose';
import { serveCliSocket, type CliSocketServer } from './cli/remote';
import { logNextSteps, logWelcome } from './welcome';

/**
 * config → database → migrations → keys → app → scheduler. A single process listens first, so that
 * /healthz and /readyz answer while the database is awaited; a cluster worker listens last, once it
 * can serve (node:cluster hands connections to every worker that listens, ready or not).
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`idp: invalid configuration: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  const terminal = await terminalDestination(config.production);
  const logger = createLogger(config.logLevel, terminal);
  if (config.workers > 1 && cluster.isPrimary) return supervise(config, logger);
  if (cluster.isPrimary) for (const warning of configWarnings(config)) logger.warn(warning);
  const metrics = createMetrics();
  joinClusterMetrics(metrics);

  // Filled in as start-up progresses; a single process answers /healthz and /readyz before they exist.
  const running: { services?: Composition; scheduler?: Scheduler; cliSocket?: CliSocketServer } = {};
  // A worker's /readyz answers for the whole instance: the primary says how many workers are ready.
  let workersReady = 0;
  if (cluster.isWorker) {
    process.on('message', (message: { type?: string; ready?: unknown }) => {
      if (message?.type === 'idp-workers-ready' && typeof message.ready === 'number') workersReady = message.ready;
    });
  }
  const server = createServer({
    config,
    logger,
    metrics,
    composition: () => running.services,
    workersReady: cluster.isWorker ? () => workersReady >= config.workers : undefined,
  });
  server.keepAliveTimeout = 65_000;
  let address: AddressInfo | undefined;
  const listen = async () => {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      fatal(logger, new Error(`cannot listen on ${config.host}:${config.port} (${(error as Error).message})`));
    }
    address = server.address() as AddressInfo;
    logWelcome(logger, config, address);
  };
  if (!cluster.isWorker) await listen();
  // In a cluster the primary owns the management listener; a single process serves its own.
  const metricsServer = cluster.isWorker ? undefined : await listenForMetrics(config, logger, () => metrics.scrape());

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: stop the schedule, drain requests, close the database');
    await running.cliSocket?.close();
    await running.scheduler?.stop();
    // Requests in flight may finish; a keep-alive connection that turns idle, or a client that
    // never finishes, must not hold the process: past the request timeout every connection goes.
    await new Promise<void>((resolve) => {
      const drain = setInterval(() => server.closeIdleConnections(), 100);
      const deadline = setTimeout(() => server.closeAllConnections(), config.requestTimeoutMs);
      server.close(() => {
        clearInterval(drain);
        clearTimeout(deadline);
        resolve();
      });
      server.closeIdleConnections();
    });
    metricsServer?.close();
    await running.services?.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // A worker whose primary is gone stops too, rather than serving unsupervised.
  process.on('disconnect', () => void shutdown('primary gone'));

  let services: Composition;
  try {
    services = await compose({ config, logger, metrics });
  } catch (error) {
    fatal(logger, error);
  }
  running.services = services;
  if (stopping) return;
  running.scheduler = startScheduler({ ...services, rotationCron: config.rotationCron });
  // Embedded PGlite only: `idp` commands run here while this process holds the data directory.
  running.cliSocket = await serveCliSocket(services);
  if (cluster.isWorker) {
    if (stopping) return;
    await listen();
  }
  logger.info({ kid: services.keys.current.kid }, 'ready');
  if (terminal && address) logNextSteps(logger, address);
  process.send?.({ type: 'idp-ready' });
}

/**
 * IDP_WORKERS > 1 (Postgres only): the primary process only supervises. Each worker is a whole
 * instance — the same start-up order, its own key cache, client cache and LISTEN connection, its
 * own rotation schedule (the advisory lock makes concurrent checks change the state once) — and
 * they share the listening socket through node:cluster, each joining it only once ready. A worker
 * that dies after it was ready is replaced; one that cannot start stops everything with its exit
 * code (a configuration or MEK problem would only repeat). Every change of the ready count is sent
 * to every worker, whose /readyz is 503 while fewer than IDP_WORKERS are ready. SIGTERM/SIGINT are
 * passed on and each worker drains as a single process would.
 */
async function supervise(config: Config, logger: Logger): Promise<void> {
  for (const warning of configWarnings(config)) logger.warn(warning);
  logger.info({ workers: config.workers }, 'starting workers');
  const metricsServer = await listenForMetrics(config, logger, clusterScraper());
  const ready = new Set<number>();
  let stopping = false;
  let restartDelayMs = 250;

  // A worker on its way out may have lost its channel already: the callback takes that error.
  const announce = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.send({ type: 'idp-workers-ready', ready: ready.size }, () => undefined);
  };

  const fork = () => {
    const worker = cluster.fork();
    worker.on('message', (message: { type?: string }) => {
      if (message?.type !== 'idp-ready') return;
      ready.add(worker.id);
      restartDelayMs = 250;
      logger.info({ pid: worker.process.pid, ready: ready.size, workers: config.workers }, 'worker ready');
      announce();
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    const wasReady = ready.delete(worker.id);
    if (wasReady) announce();
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        metricsServer?.close();
        logger.info('stopped');
        process.exit();
      }
      return;
    }
    if (!wasReady && code !== 0) {
      logger.fatal({ pid: worker.process.pid, code, signal }, 'a worker could not start; stopping');
      stopping = true;
      for (const other of Object.values(cluster.workers ?? {})) other?.process.kill('SIGTERM');
      process.exitCode = code ?? 1;
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(code ?? 1);
      return;
    }
    logger.error({ pid: worker.process.pid, code, signal, restartInMs: restartDelayMs }, 'worker exited; starting another');
    setTimeout(fork, restartDelayMs);
    restartDelayMs = Math.min(restartDelayMs * 2, 30_000);
  });

  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: stopping every worker');
    const workers = Object.values(cluster.workers ?? {});
    if (workers.length === 0) process.exit(0);
    for (const worker of workers) worker?.process.kill('SIGTERM');
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  for (let i = 0; i < config.workers; i++) fork();
}

/** The management listener, or none with IDP_METRICS_PORT=off; a port that cannot be had stops start-up. */
async function listenForMetrics(config: Config, logger: Logger, scrape: Metrics['scrape']): Promise<http.Server | undefined> {
  if (!config.metrics) return undefined;
  try {
    return await startMetricsListener(config.metrics, scrape, logger);
  } catch (error) {
    const { host, port } = config.metrics;
    fatal(logger, new Error(`IDP_METRICS_PORT: cannot listen on ${host}:${port} (${(error as Error).message}); set another port, 0 for a free one, or off`));
  }
}

function fatal(logger: Logger, error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  logger.fatal({ code: (error as { code?: string }).code }, `cannot start: ${message}`);
  process.stderr.write(`idp: cannot start: ${message}\n`);
  process.exit(1);
}

void main();
