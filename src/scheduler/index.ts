import cron from 'node-cron';
import type { Services } from '../services';

export interface Scheduler {
  stop(): Promise<void>;
}

/**
 * Runs the rotation check on IDP_ROTATION_CRON in every instance. It only triggers: the lifecycle
 * decides, under the advisory lock, whether anything is due. Failures (database down) are logged
 * and the next tick tries again.
 */
export function startScheduler(services: Services): Scheduler {
  const { lifecycle, logger, metrics } = services;
  let running: Promise<unknown> = Promise.resolve();
  const task = cron.schedule(
    services.config.rotationCron,
    () => {
      running = lifecycle
        .check('schedule')
        .then(async (result) => {
          // Apply our own change at once rather than waiting for the notification round trip.
          if (result.changes.length > 0) await services.keys.refresh();
        })
        .catch((error: Error) => {
          metrics.rotationCheckFailures.inc();
          logger.error({ err: error.message }, 'rotation check failed; retrying at the next tick');
        });
      return running;
    },
    { name: 'idp-rotation-check', noOverlap: true },
  );
  return {
    async stop() {
      await task.stop();
      await running;
    },
  };
}

