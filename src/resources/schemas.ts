import { z } from 'zod';
import { instantBody, scopesField } from '../http/fields';
import type { ResourceView } from './view';
import { MAX_RESOURCE_URL_LENGTH } from './service';

/** The requests and responses of /admin/v1/resources (docs/oauth.md "Resources"; the OpenAPI document is generated from them. */

/** `POST /admin/v1/resources`. */
export const createResourceBody = z
  .object({
    url: z
      .string()
      .max(MAX_RESOURCE_URL_LENGTH)
      .meta({ description: 'The resource indicator (RFC 8707): an absolute https URL (http too outside production), no fragment. The aud of tokens for it.' }),
    name: z.string().max(200),
    scopes: scopesField,
  })
  .strict()
  .meta({ id: 'CreateResource' });

/** `{url}`: the resource URL, percent-encoded as one path segment. */
export const resourceUrlParam = z.object({
  url: z
    .string()
    .max(3 * MAX_RESOURCE_URL_LENGTH)
    .meta({ description: 'The resource URL, percent-encoded as one path segment (encodeURIComponent): /admin/v1/resources/https%3A%2F%2Fapi.example%2Fmcp' }),
});

export const resourceBody = z
  .object({ url: z.string(), name: z.string(), scopes: z.array(z.string()), created_at: instantBody, updated_at: instantBody })
  .meta({ id: 'Resource', description: 'An API users may grant applications access to.' });

export const resourceListBody = z.object({ resources: z.array(resourceBody) }).meta({ id: 'ResourceList' });

// The schema and the type the code builds must not drift apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const checks: [Same<z.output<typeof resourceBody>, ResourceView>] = [true];
void checks;
