import type { Capability } from '../capability';
import { sweepUnusedClients } from '../clients/service';
import { registrationRoutes, REGISTER_PATH, type RegistrationRouteDeps } from './routes';

export { REGISTER_PATH };

/** What dynamic client registration needs (docs/agents.md "Dynamic client registration". */
export interface RegistrationDeps extends Omit<RegistrationRouteDeps, 'mode'> {
  settings: {
    issuer: string;
    /** IDP_DYNAMIC_REGISTRATION: `off` mounts nothing (POST /oauth/register is 404). */
    dynamicRegistration: 'off' | 'token' | 'open';
    /** IDP_DYNAMIC_CLIENT_TTL: a dynamically registered or metadata-document client unused this long is deleted. */
    dynamicClientTtlMs: number;
  };
}

/**
 * RFC 7591 registration at POST /oauth/register and its `registration_endpoint` in discovery, when
 * IDP_DYNAMIC_REGISTRATION is `token` or `open`; and, whatever the mode (clients registered while it
 * was on outlive a change of it), the sweep of dynamically registered and metadata-document clients
 * left unused.
 */
export function registrationCapability(deps: RegistrationDeps): Capability {
  const { issuer, dynamicRegistration: mode, dynamicClientTtlMs } = deps.settings;
  const sweep = {
    name: 'registration: dynamically registered and metadata-document clients unused for IDP_DYNAMIC_CLIENT_TTL',
    run: async () => {
      const deleted = await sweepUnusedClients(deps.db, deps.now(), dynamicClientTtlMs);
      if (deleted > 0) deps.logger.info({ deleted }, 'deleted self-registered clients left unused');
    },
  };
  if (mode === 'off') return { name: 'registration', sweeps: [sweep] };
  return {
    name: 'registration',
    routes: [{ path: '/', handler: registrationRoutes({ ...deps, mode }) }],
    discovery: () => ({ registration_endpoint: `${issuer}${REGISTER_PATH}` }),
    sweeps: [sweep],
  };
}
