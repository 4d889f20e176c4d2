import { TOKEN_KINDS, type TokenKind } from './token-kinds';

/**
 * One way of holding an application role. Every condition given must hold (AND):
 * - `tokenType`: the credential is one of these kinds;
 * - `role`: the `role` claim (user tokens) is one of these;
 * - `scope`: the credential has every one of these scopes;
 * - `permission`: the `permissions` claim (admin tokens) has every one of these;
 * - `tenant`: the `tenant_id` is one of these.
 */
export interface RoleRule {
  tokenType?: TokenKind | readonly TokenKind[];
  role?: string | readonly string[];
  scope?: string | readonly string[];
  permission?: string | readonly string[];
  tenant?: string | readonly string[];
}

/**
 * Application roles, declared once: role name → a rule, or several rules of which any one grants
 * it (OR). Evaluated once per request, after verification; the result is `auth.roles`.
 *
 * ```ts
 * roles: {
 *   admin: [{ tokenType: 'admin' }, { role: 'admin' }],
 *   'billing-reader': { scope: 'invoices:read' },
 *   'acme-staff': { tenant: 'acme', role: ['staff', 'admin'] },
 * }
 * ```
 */
export type RoleMap = Readonly<Record<string, RoleRule | readonly RoleRule[]>>;

/** What a rule is evaluated against: the verified credential, whatever its kind. */
export interface RoleInput {
  tokenType: TokenKind;
  role: string | undefined;
  scopes: readonly string[];
  permissions: readonly string[];
  tenantId: string | null;
}

type CompiledRule = (input: RoleInput) => boolean;
export type RoleMapper = (input: RoleInput) => readonly string[];

const RULE_KEYS = new Set(['tokenType', 'role', 'scope', 'permission', 'tenant']);

/** Checks the map once (misuse throws a TypeError naming the role) and returns the evaluator. */
export function compileRoles(map: RoleMap | undefined): RoleMapper {
  if (map === undefined) return () => NO_ROLES;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new TypeError('createVerifier: roles must be an object: role name → rule(s)');
  const compiled: Array<[string, CompiledRule[]]> = Object.entries(map).map(([name, rules]) => {
    const list: readonly RoleRule[] = Array.isArray(rules) ? rules : [rules as RoleRule];
    if (list.length === 0) throw new TypeError(`createVerifier: role "${name}" has no rule`);
    return [name, list.map((rule) => compileRule(name, rule))];
  });
  if (compiled.length === 0) return () => NO_ROLES;
  return (input) => Object.freeze(compiled.filter(([, rules]) => rules.some((rule) => rule(input))).map(([name]) => name));
}

const NO_ROLES: readonly string[] = Object.freeze([]);

function compileRule(name: string, rule: RoleRule): CompiledRule {
  if (rule === null || typeof rule !== 'object') throw new TypeError(`createVerifier: role "${name}": a rule must be an object`);
  const keys = Object.keys(rule);
  const unknown = keys.filter((key) => !RULE_KEYS.has(key));
  if (unknown.length > 0) throw new TypeError(`createVerifier: role "${name}": unknown condition ${unknown.join(', ')} (known: ${[...RULE_KEYS].join(', ')})`);
  if (keys.length === 0) throw new TypeError(`createVerifier: role "${name}": a rule without conditions would grant the role to everyone`);
  const list = (key: keyof RoleRule): readonly string[] | undefined => {
    const value = rule[key];
    if (value === undefined) return undefined;
    const values: readonly unknown[] = typeof value === 'string' ? [value] : Array.isArray(value) ? value : [value];
    if (values.length === 0 || !values.every((v) => typeof v === 'string' && v !== '')) {
      throw new TypeError(`createVerifier: role "${name}": ${key} must be a non-empty string or array of strings`);
    }
    return values as readonly string[];
  };
  const tokenTypes = list('tokenType');
  const bad = tokenTypes?.filter((t) => !TOKEN_KINDS.includes(t as TokenKind));
  if (bad && bad.length > 0) throw new TypeError(`createVerifier: role "${name}": unknown tokenType ${bad.join(', ')} (known: ${TOKEN_KINDS.join(', ')})`);
  const roles = list('role');
  const scopes = list('scope');
  const permissions = list('permission');
  const tenants = list('tenant');
  return (input) =>
    (tokenTypes === undefined || tokenTypes.includes(input.tokenType)) &&
    (roles === undefined || (input.role !== undefined && roles.includes(input.role))) &&
    (scopes === undefined || scopes.every((s) => input.scopes.includes(s))) &&
    (permissions === undefined || permissions.every((p) => input.permissions.includes(p))) &&
    (tenants === undefined || (input.tenantId !== null && tenants.includes(input.tenantId)));
}
