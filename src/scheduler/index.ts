import cron from 'node-cron';
import type { KeyLifecycle } from '../keys/lifecycle';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';

/** What the schedule triggers: the rotation check, and this instance's key cache after a change. */
export interface SchedulerDeps {
  rotationCron: string;
  lifecycle: Pick<KeyLifecycle, 'check'>;
  keys: { refresh(): Promise<void> };
  logger: Logger;
  metrics: Pick<Metrics, 'rotationCheckFailures'>;
}

export interface Scheduler {
  stop(): Promise<void>;
}

/**
 * Runs the rotation check on IDP_ROTATION_CRON in every instance. It only triggers: the lifecycle
 * decides, under the advisory lock, whether anything is due. Failures (database down) are logged
 * and the next tick tries again.
 */
export function startScheduler(deps: SchedulerDeps): Scheduler {
  const { lifecycle, logger, metrics } = deps;
  let running: Promise<unknown> = Promise.resolve();
  const task = cron.schedule(
    deps.rotationCron,
    () => {
      running = lifecycle
        .check('schedule')
        .then(async (result) => {
          // Apply our own change at once rather than waiting for the notification round trip.
          if (result.changes.length > 0) await deps.keys.refresh();
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

