import type { Resource } from './repository';

/** The JSON shape of a resource (admin API, `idp resources ... --json`). */
export interface ResourceView {
  url: string;
  name: string;
  scopes: string[];
  created_at: string;
  updated_at: string;
}

export function resourceView(resource: Resource): ResourceView {
  return { url: resource.url, name: resource.name, scopes: [...resource.scopes], created_at: resource.createdAt.toISOString(), updated_at: resource.updatedAt.toISOString() };
}
