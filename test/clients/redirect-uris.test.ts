import { InvalidRedirectUri, MAX_REDIRECT_URIS, redirectUriMatches, validateRedirectUri, validateRedirectUris } from '../../src/clients/redirect-uris';

const production = { production: true };
const development = { production: false };

describe('redirect URIs (docs/oauth.md "Redirect URIs"', () => {
  describe('validateRedirectUri accepts', () => {
    it.each([
      ['https with a path', 'https://app.example/callback'],
      ['https with a port and a query', 'https://app.example:8443/cb?tenant=a'],
      ['https without a path', 'https://app.example'],
      ['loopback IPv4 without a port', 'http://127.0.0.1/callback'],
      ['loopback IPv4 with a port', 'http://127.0.0.1:49152/callback'],
      ['loopback IPv6', 'http://[::1]:8080/cb'],
      ['a private-use scheme (RFC 8252 §7.1)', 'com.example.app:/oauth2redirect'],
      ['a private-use scheme with an authority', 'cursor://anysphere.cursor-mcp/oauth/callback'],
      ['percent-encoded characters', 'https://app.example/caf%C3%A9'],
    ])('%s, in production', (_why, uri) => {
      expect(validateRedirectUri(uri, production)).toBe(uri);
      expect(validateRedirectUri(uri, development)).toBe(uri);
    });

    it('http://localhost outside production only', () => {
      expect(validateRedirectUri('http://localhost:3000/cb', development)).toBe('http://localhost:3000/cb');
      expect(validateRedirectUri('http://localhost:3000/cb', production)).toBeInstanceOf(InvalidRedirectUri);
    });
  });

  describe('validateRedirectUri refuses', () => {
    it.each([
      ['empty', '', /empty/],
      ['relative', '/callback', /not absolute/],
      ['relative without a slash', 'callback', /not absolute/],
      ['scheme-relative', '//app.example/cb', /not absolute/],
      ['a fragment', 'https://app.example/cb#frag', /fragment/],
      ['an empty fragment', 'https://app.example/cb#', /fragment/],
      ['a wildcard host', 'https://*.example.com/cb', /wildcard/],
      ['a wildcard path', 'https://app.example/*', /wildcard/],
      ['http to a non-loopback host', 'http://app.example/cb', /http/],
      ['http to a private address', 'http://10.0.0.1/cb', /http/],
      ['http to a look-alike of loopback', 'http://127.0.0.1.evil.example/cb', /http/],
      ['user information', 'https://user:pass@app.example/cb', /user information/],
      ['a space', 'https://app.example/a b', /characters/],
      ['a backslash', 'https://evil.example\\@app.example/cb', /characters/],
      ['non-ASCII', 'https://app.example/café', /characters/],
      ['javascript:', 'javascript:alert(1)', /never a redirect target/],
      ['data:', 'data:text/html,hi', /never a redirect target/],
      ['file:', 'file:///etc/passwd', /never a redirect target/],
      ['an https URI without a host', 'https:///cb', /no host/],
      ['https with one slash', 'https:/app.example/cb', /no host/],
      ['a bare scheme', 'com.example.app:', /nothing after/],
      ['too long', `https://app.example/${'a'.repeat(2048)}`, /longer than 2048/],
    ])('%s', (_why, uri, message) => {
      for (const policy of [production, development]) {
        const result = validateRedirectUri(uri, policy);
        expect(result).toBeInstanceOf(InvalidRedirectUri);
        expect((result as InvalidRedirectUri).message).toMatch(message);
      }
    });
  });

  it('validateRedirectUris drops duplicates, bounds the count and names the first refusal', () => {
    expect(validateRedirectUris(['https://a.example/cb', 'https://a.example/cb'], production)).toEqual(['https://a.example/cb']);
    const many = Array.from({ length: MAX_REDIRECT_URIS + 1 }, (_, i) => `https://a.example/cb${i}`);
    expect((validateRedirectUris(many, production) as Error).message).toMatch(`at most ${MAX_REDIRECT_URIS}`);
    expect(validateRedirectUris(many.slice(0, MAX_REDIRECT_URIS), production)).toHaveLength(MAX_REDIRECT_URIS);
    expect((validateRedirectUris(['https://a.example/cb', 'http://b.example/cb'], production) as Error).message).toMatch(/b\.example/);
  });

  describe('redirectUriMatches', () => {
    it.each([
      ['the same string', ['https://app.example/cb'], 'https://app.example/cb', true],
      ['another path', ['https://app.example/cb'], 'https://app.example/cb2', false],
      ['a trailing slash more', ['https://app.example/cb'], 'https://app.example/cb/', false],
      ['another query', ['https://app.example/cb?a=1'], 'https://app.example/cb?a=2', false],
      ['an added query', ['https://app.example/cb'], 'https://app.example/cb?x=1', false],
      ['another case of the host (exact strings)', ['https://app.example/cb'], 'https://APP.example/cb', false],
      ['a default port written out (exact strings)', ['https://app.example/cb'], 'https://app.example:443/cb', false],
      ['a fragment added', ['https://app.example/cb'], 'https://app.example/cb#x', false],
      ['another https port', ['https://app.example:8443/cb'], 'https://app.example:9443/cb', false],
      ['loopback IPv4 on another port', ['http://127.0.0.1/cb'], 'http://127.0.0.1:51234/cb', true],
      ['loopback IPv4 registered with a port, on another port', ['http://127.0.0.1:8080/cb'], 'http://127.0.0.1:9090/cb', true],
      ['loopback IPv4 without a port when registered with one', ['http://127.0.0.1:8080/cb'], 'http://127.0.0.1/cb', true],
      ['loopback IPv6 on another port', ['http://[::1]:1/cb'], 'http://[::1]:65535/cb', true],
      ['loopback with another path', ['http://127.0.0.1/cb'], 'http://127.0.0.1:5000/other', false],
      ['loopback with a query added', ['http://127.0.0.1/cb'], 'http://127.0.0.1:5000/cb?x=1', false],
      ['loopback IPv6 for an IPv4 registration', ['http://127.0.0.1/cb'], 'http://[::1]:5000/cb', false],
      ['loopback on a port out of range', ['http://127.0.0.1/cb'], 'http://127.0.0.1:70000/cb', false],
      ['loopback on port 0', ['http://127.0.0.1/cb'], 'http://127.0.0.1:0/cb', false],
      ['loopback over https (no port relief)', ['https://127.0.0.1/cb'], 'https://127.0.0.1:5000/cb', false],
      ['localhost on another port (no port relief)', ['http://localhost:3000/cb'], 'http://localhost:3001/cb', false],
      ['a look-alike of loopback', ['http://127.0.0.1/cb'], 'http://127.0.0.1.evil.example:80/cb', false],
      ['loopback host with userinfo trickery', ['http://127.0.0.1/cb'], 'http://127.0.0.1:80@evil.example/cb', false],
      ['nothing registered', [], 'https://app.example/cb', false],
      ['a private-use scheme', ['com.example.app:/cb'], 'com.example.app:/cb', true],
      ['one of several', ['https://a.example/cb', 'https://b.example/cb'], 'https://b.example/cb', true],
    ])('%s', (_why, registered, requested, expected) => {
      expect(redirectUriMatches(registered, requested)).toBe(expected);
    });
  });
});
