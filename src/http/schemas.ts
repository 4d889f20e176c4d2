import { z } from 'zod';
import { API_ERRORS, type ApiErrorCode } from './api-error';
import { instantBody } from './fields';

/**
 * The shapes shared by the HTTP surfaces, for the OpenAPI document (src/http/openapi.ts): the error
 * body of the JSON APIs and the health endpoints. Each route's own schemas sit beside its routes
 * (src/oauth/schemas.ts, src/users/schemas.ts, src/admin/schemas.ts, src/api-keys/schemas.ts).
 */


const API_ERROR_CODES = Object.keys(API_ERRORS) as [ApiErrorCode, ...ApiErrorCode[]];

/** `{"error", "message"}` of /auth/v1 and /admin/v1 (docs/http-api.md "HTTP"; one status per code (API_ERRORS). */
export const apiErrorBody = z
  .object({
    error: z.enum(API_ERROR_CODES).meta({ description: 'A stable code; each code has one HTTP status.' }),
    message: z.string().meta({ description: 'What went wrong, for a developer. Never a secret; the cause of a refused credential is logged, not returned.' }),
    safe_at: instantBody.optional().meta({ description: 'POST /admin/v1/keys/rotate refused (409): when the next key has been published long enough to be promoted.' }),
  })
  .meta({ id: 'ApiError', description: 'The error body of /auth/v1 and /admin/v1.' });

/** GET /healthz. */
export const healthBody = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });

/** GET /readyz, 200 and 503 alike. */
export const readinessBody = z
  .object({
    status: z.enum(['ready', 'not ready']),
    checks: z.object({
      database: z.boolean().meta({ description: 'the database answered within 1 s' }),
      signing_key: z.boolean().meta({ description: 'a current signing key is loaded' }),
      workers: z.boolean().optional().meta({ description: 'IDP_WORKERS > 1 only: every worker process of the instance is ready' }),
    }),
  })
  .meta({ id: 'Readiness' });
