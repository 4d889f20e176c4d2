import { configWarnings, ConfigError, loadConfig, type Config } from './config';
import { createHttpServer } from './http/server';
import { createLogger, type Logger } from './observability/logger';
import { createMetrics } from './observability/metrics';
import { startScheduler, type Scheduler } from './scheduler';
import { startServices, type Services } from './services';

/** config → database → migrations → keys → app → listen → scheduler (the server listens first so /healthz and /readyz answer while the database is awaited). */
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
  const logger = createLogger(config.logLevel);
  for (const warning of configWarnings(config)) logger.warn(warning);
  const metrics = createMetrics();

  // Filled in as start-up progresses; the server answers /healthz and /readyz before they exist.
  const running: { services?: Services; scheduler?: Scheduler } = {};
  const server = createHttpServer({ config, logger, metrics, services: () => running.services });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  logger.info({ port: config.port, host: config.host, issuer: config.issuer, database: config.databaseUrl ? 'postgres' : `pglite:${config.dataDir}` }, 'listening');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: stop the schedule, drain requests, close the database');
    await running.scheduler?.stop();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    await running.services?.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  let services: Services;
  try {
    services = await startServices({ config, logger, metrics });
  } catch (error) {
    fatal(logger, error);
  }
  running.services = services;
  if (stopping) return;
  running.scheduler = startScheduler(services);
  logger.info({ kid: services.keys.current.kid }, 'ready');
}

function fatal(logger: Logger, error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  logger.fatal({ code: (error as { code?: string }).code }, `cannot start: ${message}`);
  process.stderr.write(`idp: cannot start: ${message}\n`);
  process.exit(1);
}

void main();
