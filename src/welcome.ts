import cluster from 'node:cluster';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Config } from './config';
import type { Logger } from './observability/logger';

/** The URL a person on this machine reaches the server at: a wildcard address is localhost. */
function localUrl(address: AddressInfo): string {
  const wildcard = address.address === '0.0.0.0' || address.address === '::';
  const host = wildcard ? 'localhost' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** Where the data is: a path, or the Postgres server and database (never the user or password). */
function dataLocation(config: Config): string {
  if (config.databaseUrl === undefined) return `PGlite in ${path.resolve(config.dataDir)}`;
  try {
    const url = new URL(config.databaseUrl);
    return `Postgres ${url.host}${url.pathname}`;
  } catch {
    return 'Postgres (DATABASE_URL)';
  }
}

/** Where the MEK comes from (never the MEK). */
function mekLocation(config: Config): string {
  if (config.mek !== undefined) return 'MEK: from IDP_MEK';
  if (config.mekFile !== undefined) return `MEK: ${path.resolve(config.mekFile)} (IDP_MEK_FILE)`;
  return `development MEK: ${path.resolve(config.devMekFile)} (never for production: set IDP_MEK or IDP_MEK_FILE)`;
}

/**
 * The first lines of a start, logged once the server listens: where it listens, and where its data
 * and MEK are (README.md "Quick start").
 */
export function logWelcome(logger: Logger, config: Config, address: AddressInfo): void {
  logger.info({ port: address.port, host: config.host, issuer: config.issuer }, `listening on ${localUrl(address)}`);
  // In a cluster every worker listens; the first one says the rest.
  if (cluster.isWorker && cluster.worker?.id !== 1) return;
  logger.info({ database: config.databaseUrl ? 'postgres' : `pglite:${config.dataDir}` }, `data: ${dataLocation(config)}`);
  logger.info(mekLocation(config));
}

/** Once ready, on an interactive terminal: what to try next. */
export function logNextSteps(logger: Logger, address: AddressInfo): void {
  if (cluster.isWorker && cluster.worker?.id !== 1) return;
  logger.info('try: npm run -s idp -- clients create --name demo --scope read   (prints a client_id and its client_secret)');
  logger.info(`then: curl -u "<client_id>:<client_secret>" -d grant_type=client_credentials ${localUrl(address)}/oauth/token`);
}
