import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { IncomingHttpHeaders } from 'node:http';
import { openApiDocument } from '../../src/compose';

/**
 * Checks HTTP responses against the OpenAPI document (src/http/openapi.ts): finds the operation of a
 * method and a concrete path (`/admin/v1/clients/abc?x=1`) or a template (`/admin/v1/clients/{clientId}`),
 * requires the status to be documented, and validates the body against that response's schema
 * with ajv (JSON Schema draft 2020-12, the dialect of OpenAPI 3.1; formats checked).
 */

/** The parts of an OpenAPI 3.1 document read here. */
interface MediaType {
  schema?: unknown;
}
interface Response {
  $ref?: string;
  content?: Record<string, MediaType>;
}
interface Operation {
  operationId?: string;
  responses?: Record<string, Response>;
}
export interface OpenApiDocument {
  openapi?: string;
  paths?: Record<string, Record<string, unknown>>;
  components?: { schemas?: Record<string, unknown>; responses?: Record<string, Response> };
}

const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'trace'] as const;
const COMPONENTS_ID = 'urn:idp:openapi:components';
const COMPONENT_REF = '#/components/schemas/';

/** What a response is checked on: its request (method, path) and what came back. */
export interface CheckedResponse {
  method: string;
  /** A concrete path (query allowed) or a path template of the document. */
  path: string;
  status: number;
  /** The parsed JSON body; undefined when there was none or it was not JSON. */
  body: unknown;
  /** The raw body, when known: lets an empty body be told from `{}`. */
  text?: string;
  headers?: IncomingHttpHeaders | Record<string, string | string[] | undefined>;
}

/** A supertest/superagent response (its request is reachable through `req`). */
export interface SupertestLike {
  status: number;
  body: unknown;
  text?: string;
  headers: Record<string, string | string[] | undefined>;
  req?: { method?: string; path?: string };
}

function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(value)) {
    out[key] = key === '$ref' && typeof member === 'string' && member.startsWith(COMPONENT_REF) ? `${COMPONENTS_ID}#/$defs/${member.slice(COMPONENT_REF.length)}` : rewriteRefs(member);
  }
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message ?? ''}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`).join('; ');
}

interface Route {
  template: string;
  pattern: RegExp;
  literalLength: number;
  item: Record<string, unknown>;
}

export class OpenApiChecker {
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly routes: Route[];
  /** `METHOD template status` of every response checked so far (coverage). */
  readonly checked = new Set<string>();

  constructor(readonly document: OpenApiDocument) {
    this.ajv = new Ajv2020({ strict: true, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addSchema({ $id: COMPONENTS_ID, $defs: rewriteRefs(document.components?.schemas ?? {}) });
    this.routes = Object.entries(document.paths ?? {}).map(([template, item]) => ({
      template,
      pattern: new RegExp(`^${template.split(/\{[^}/]+\}/).map(escapeRegExp).join('[^/]+')}$`),
      literalLength: template.replace(/\{[^}/]+\}/g, '').length,
      item,
    }));
  }

  /** Every `METHOD template` of the document. */
  operations(): Array<{ method: string; template: string; operation: Operation }> {
    return this.routes.flatMap((route) =>
      METHODS.filter((m) => route.item[m] !== undefined).map((m) => ({ method: m.toUpperCase(), template: route.template, operation: route.item[m] as Operation })),
    );
  }

  /** The operation a request reaches: the matching template with the most literal text (`/keys/rotate` over `/keys/{kid}`). */
  find(method: string, path: string): { template: string; operation: Operation } | undefined {
    const bare = path.split('?')[0] ?? path;
    const key = method.toLowerCase();
    const candidates = this.routes.filter((r) => r.item[key] !== undefined && (r.template === bare || r.pattern.test(bare)));
    candidates.sort((a, b) => b.literalLength - a.literalLength);
    const route = candidates[0];
    return route ? { template: route.template, operation: route.item[key] as Operation } : undefined;
  }

  private response(operation: Operation, status: number): Response | undefined {
    const responses = operation.responses ?? {};
    let response = responses[String(status)] ?? responses[`${String(status)[0]}XX`] ?? responses.default;
    if (response?.$ref) {
      const name = response.$ref.replace('#/components/responses/', '');
      response = this.document.components?.responses?.[name];
      if (!response) throw new Error(`unresolved response reference ${name}`);
    }
    return response;
  }

  private validator(template: string, method: string, status: number, schema: unknown): ValidateFunction {
    const key = `${method} ${template} ${status}`;
    let validate = this.validators.get(key);
    if (!validate) {
      validate = this.ajv.compile(rewriteRefs(schema) as object);
      this.validators.set(key, validate);
    }
    return validate;
  }

  /** The problems of a response, or an empty list when it matches the document. */
  problems(response: CheckedResponse, options: { allowUnknownRoute?: boolean } = {}): string[] {
    const method = response.method.toUpperCase();
    const found = this.find(method, response.path);
    if (!found) return options.allowUnknownRoute ? [] : [`${method} ${response.path}: no operation in the OpenAPI document`];
    const where = `${method} ${found.template} → ${response.status}`;
    const documented = this.response(found.operation, response.status);
    if (!documented) return [`${where}: status not documented (documented: ${Object.keys(found.operation.responses ?? {}).join(', ')})`];
    this.checked.add(`${method} ${found.template} ${response.status}`);
    const media = documented.content?.['application/json'];
    const problems: string[] = [];
    const text = response.text;
    if (!media) {
      if (text !== undefined && text !== '') problems.push(`${where}: a body where the document says none: ${text.slice(0, 200)}`);
      return problems;
    }
    if (method === 'HEAD') return problems;
    const type = response.headers?.['content-type'];
    if (typeof type === 'string' && !/^application\/json\b/i.test(type)) problems.push(`${where}: Content-Type ${type}, documented application/json`);
    if (response.body === undefined) return [...problems, `${where}: no JSON body, documented one${text ? `: ${text.slice(0, 200)}` : ''}`];
    const validate = this.validator(found.template, method, response.status, media.schema ?? {});
    if (!validate(response.body)) problems.push(`${where}: body does not match the document: ${describeErrors(validate.errors)}; body ${JSON.stringify(response.body).slice(0, 500)}`);
    return problems;
  }

  /**
   * The problems of a response against a response of `components.responses` (one no operation lists,
   * e.g. the 405 of a method a path does not have).
   */
  componentResponseProblems(name: string, res: SupertestLike): string[] {
    const documented = this.document.components?.responses?.[name];
    if (!documented) return [`no response ${name} among the components`];
    const schema = documented.content?.['application/json']?.schema;
    if (schema === undefined) return res.text ? [`${name}: a body where the document says none`] : [];
    const key = `component ${name}`;
    let validate = this.validators.get(key);
    if (!validate) {
      validate = this.ajv.compile(rewriteRefs(schema) as object);
      this.validators.set(key, validate);
    }
    return validate(res.body) ? [] : [`${name}: body does not match the document: ${describeErrors(validate.errors)}`];
  }

  /** Throws with every problem when a response does not match the document. */
  check(response: CheckedResponse, options: { allowUnknownRoute?: boolean } = {}): void {
    const problems = this.problems(response, options);
    if (problems.length > 0) throw new Error(problems.join('\n'));
  }

  /** `problems` of a supertest response (method and path from its request). */
  supertestProblems(res: SupertestLike, options: { allowUnknownRoute?: boolean } = {}): string[] {
    const req = res.req;
    if (!req?.method || !req.path) return ['the response does not say its request'];
    return this.problems({ method: req.method, path: req.path, status: res.status, body: res.text === '' ? undefined : res.body, text: res.text, headers: res.headers }, options);
  }

  /** `check` for a supertest response. */
  checkSupertest(res: SupertestLike, options: { allowUnknownRoute?: boolean } = {}): void {
    const problems = this.supertestProblems(res, options);
    if (problems.length > 0) throw new Error(problems.join('\n'));
  }
}

let shared: OpenApiChecker | undefined;

/**
 * The checker of the document this source tree generates (the schemas do not depend on the issuer),
 * with registration in `token` mode: POST /oauth/register with every answer either mode may give.
 */
export function openApiChecker(): OpenApiChecker {
  shared ??= new OpenApiChecker(openApiDocument({ issuer: 'http://idp.test', dynamicRegistration: 'token' }) as OpenApiDocument);
  return shared;
}

/** A supertest `.expect(...)` assertion: the response matches the OpenAPI document (routes it does not list are not checked). */
export function matchesOpenApi(res: SupertestLike): void {
  openApiChecker().checkSupertest(res, { allowUnknownRoute: true });
}
