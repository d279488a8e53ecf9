// The gateway demo page. Everything here runs in the browser and talks only to the gateway that
// served it: the login and the issuer's public keys are under /_demo/issuer/, the API calls go to
// the gateway's own paths. The token is decoded and its signature checked here (WebCrypto), and
// sent nowhere but in the Authorization header of the API calls.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  /** What the gateway told us about itself (issuer, audience, rules, users). */
  let settings = null;
  /** The token the issuer gave at the last login. */
  let issued = '';
  /** The issuer's JWK Set, fetched once (and again for an unknown kid). */
  let jwks = null;
  /** Counts API calls, so that each result can be told from the previous one. */
  let calls = 0;
  /** Counts renders, so that a slow signature check can't overwrite a newer one. */
  let generation = 0;
  /** The signature check of the current token: {ok, text}. */
  let signature = { ok: null, text: '' };

  // ---- decoding --------------------------------------------------------------------------------

  function base64urlBytes(text) {
    if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
      throw new Error('not base64url');
    }
    const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
    const binary = atob(padded);
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }

  function base64urlJson(text) {
    const json = new TextDecoder('utf-8', { fatal: true }).decode(base64urlBytes(text));
    const value = JSON.parse(json);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error('not a JSON object');
    }
    return value;
  }

  /** Splits and decodes a compact JWS; `error` says what is wrong with it, if anything. */
  function decode(token) {
    const parts = token.split('.');
    const result = { parts, header: null, claims: null, error: null };
    if (parts.length === 5) {
      result.error = 'five parts: an encrypted token (JWE), which the gateway does not accept';
      return result;
    }
    if (parts.length !== 3) {
      result.error = `a signed token has three parts separated by dots; this one has ${parts.length}`;
      return result;
    }
    try {
      result.header = base64urlJson(parts[0]);
    } catch (err) {
      result.error = `the header is not base64url-encoded JSON (${err.message})`;
      return result;
    }
    try {
      result.claims = base64urlJson(parts[1]);
    } catch (err) {
      result.error = `the payload is not base64url-encoded JSON (${err.message})`;
    }
    return result;
  }

  // ---- time ------------------------------------------------------------------------------------

  const now = () => Math.floor(Date.now() / 1000);

  function span(seconds) {
    let s = Math.abs(Math.round(seconds));
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    if (h) return m ? `${h} h ${m} min` : `${h} h`;
    if (m) return `${m} min ${s} s`;
    return `${s} s`;
  }

  const localTime = (seconds) => new Date(seconds * 1000).toLocaleString();
  const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString();

  // ---- signature (WebCrypto) -------------------------------------------------------------------

  const ALGORITHMS = {
    ES256: { key: { name: 'ECDSA', namedCurve: 'P-256' }, verify: { name: 'ECDSA', hash: 'SHA-256' } },
    ES384: { key: { name: 'ECDSA', namedCurve: 'P-384' }, verify: { name: 'ECDSA', hash: 'SHA-384' } },
    RS256: { key: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, verify: { name: 'RSASSA-PKCS1-v1_5' } },
    PS256: { key: { name: 'RSA-PSS', hash: 'SHA-256' }, verify: { name: 'RSA-PSS', saltLength: 32 } },
  };

  async function keySet(refresh) {
    if (!jwks || refresh) {
      const response = await fetch(settings.jwks, { cache: 'no-store' });
      if (!response.ok) throw new Error(`the issuer's JWKS answered ${response.status}`);
      jwks = await response.json();
    }
    return jwks.keys || [];
  }

  async function checkSignature(decoded) {
    const { header, parts } = decoded;
    const alg = header.alg;
    if (typeof alg !== 'string' || alg.toLowerCase() === 'none') {
      return { ok: false, text: 'unsecured token (alg none): refused, "unsecured token (alg none)"' };
    }
    if (!window.crypto || !window.crypto.subtle) {
      return {
        ok: null,
        text: 'checked by the gateway (WebCrypto needs a secure context: open the page on 127.0.0.1 or localhost)',
      };
    }
    const algorithm = ALGORITHMS[alg];
    if (!algorithm) {
      return { ok: null, text: `${alg}: checked by the gateway (this page verifies ${Object.keys(ALGORITHMS).join(', ')})` };
    }
    let keys = await keySet(false);
    let jwk = keys.find((key) => key.kid === header.kid);
    if (!jwk) {
      keys = await keySet(true);
      jwk = keys.find((key) => key.kid === header.kid);
    }
    if (!jwk) {
      return { ok: false, text: `no key with kid "${header.kid}" in the issuer's JWKS: refused, "no key for this token"` };
    }
    if (jwk.alg && jwk.alg !== alg) {
      return { ok: false, text: `the key is for ${jwk.alg}, the token says ${alg}: refused, "algorithm does not match the key"` };
    }
    let signatureBytes;
    try {
      signatureBytes = base64urlBytes(parts[2]);
    } catch (err) {
      return { ok: false, text: 'the signature is not base64url: refused, "malformed token"' };
    }
    const publicJwk = jwk.kty === 'EC'
      ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }
      : { kty: jwk.kty, n: jwk.n, e: jwk.e };
    const key = await crypto.subtle.importKey('jwk', publicJwk, algorithm.key, false, ['verify']);
    const signed = new TextEncoder().encode(`${parts[0]}.${parts[1]}`);
    const valid = await crypto.subtle.verify(algorithm.verify, key, signatureBytes, signed);
    return valid
      ? { ok: true, text: `valid: ${alg}, signed by the issuer's key "${jwk.kid}" (verified here with WebCrypto)` }
      : { ok: false, text: `does not match key "${jwk.kid}": refused, "signature invalid"` };
  }

  // ---- the checks ------------------------------------------------------------------------------

  function scopesOf(claims) {
    const granted = [];
    if (typeof claims.scope === 'string') granted.push(...claims.scope.split(' ').filter(Boolean));
    if (Array.isArray(claims.scp)) granted.push(...claims.scp.filter((s) => typeof s === 'string'));
    return granted;
  }

  function mediaType(value) {
    const text = String(value).toLowerCase();
    return text.startsWith('application/') ? text.slice('application/'.length) : text;
  }

  /** One line per check the layer makes: {name, ok (true/false/null), text}. */
  function checks(decoded) {
    const { header, claims } = decoded;
    const leeway = settings.leeway_secs;
    const t = now();
    const lines = [];
    lines.push({ name: 'signature', ok: signature.ok, text: signature.text || 'checking…' });

    if (typeof claims.iss !== 'string') {
      lines.push({ name: 'issuer', ok: false, text: 'no iss: refused, "issuer not allowed"' });
    } else if (claims.iss === settings.issuer) {
      lines.push({ name: 'issuer', ok: true, text: `iss is the demo issuer (${claims.iss})` });
    } else {
      lines.push({ name: 'issuer', ok: false, text: `iss "${claims.iss}" is not ${settings.issuer}: refused, "issuer not allowed"` });
    }

    const audiences = Array.isArray(claims.aud) ? claims.aud : (claims.aud === undefined ? [] : [claims.aud]);
    if (audiences.includes(settings.audience)) {
      lines.push({ name: 'audience', ok: true, text: `aud includes "${settings.audience}"` });
    } else {
      lines.push({
        name: 'audience',
        ok: false,
        text: `${audiences.length ? `aud ${JSON.stringify(claims.aud)}` : 'no aud'} lacks "${settings.audience}": refused, "audience not allowed"`,
      });
    }

    if (typeof claims.exp !== 'number') {
      lines.push({ name: 'expiry', ok: false, text: 'no exp: refused, "missing required claim exp"' });
    } else if (t >= claims.exp + leeway) {
      lines.push({ name: 'expiry', ok: false, text: `expired ${span(t - claims.exp)} ago (more than the ${leeway} s leeway): refused, "token expired"` });
    } else if (typeof claims.nbf === 'number' && t + leeway < claims.nbf) {
      lines.push({ name: 'expiry', ok: false, text: `not valid before ${clock(claims.nbf)}: refused, "token not yet valid"` });
    } else if (typeof claims.iat === 'number' && claims.iat > t + leeway) {
      lines.push({ name: 'expiry', ok: false, text: `issued in the future (${clock(claims.iat)}): refused, "token issued in the future"` });
    } else if (t >= claims.exp) {
      lines.push({
        name: 'expiry',
        ok: true,
        text: `expired ${span(t - claims.exp)} ago, still inside the ${leeway} s leeway: accepted until ${clock(claims.exp + leeway)}`,
      });
    } else {
      lines.push({ name: 'expiry', ok: true, text: `valid for ${span(claims.exp - t)} more (until ${clock(claims.exp)}, plus ${leeway} s leeway)` });
    }

    if (settings.require_typ) {
      if (header.typ !== undefined && mediaType(header.typ) === mediaType(settings.require_typ)) {
        lines.push({ name: 'type', ok: true, text: `typ "${header.typ}": an RFC 9068 access token, as required` });
      } else {
        lines.push({
          name: 'type',
          ok: false,
          text: `typ ${header.typ === undefined ? 'missing' : `"${header.typ}"`}, "${settings.require_typ}" required: refused, "token type not accepted"`,
        });
      }
    } else {
      lines.push({ name: 'type', ok: true, text: 'not checked by this gateway' });
    }
    for (const name of settings.required_claims) {
      const present = claims[name] !== undefined && claims[name] !== null;
      lines.push({
        name: `claim ${name}`,
        ok: present,
        text: present ? 'present' : `missing: refused, "missing required claim ${name}"`,
      });
    }

    const granted = scopesOf(claims);
    const rules = settings.scope_rules.map((rule) => {
      const missing = rule.scopes.filter((scope) => !granted.includes(scope));
      return missing.length
        ? `${rule.prefix} needs ${rule.scopes.join(' ')}: 403 "insufficient_scope" there`
        : `${rule.prefix} (needs ${rule.scopes.join(' ')}): allowed`;
    });
    const allowedEverywhere = settings.scope_rules.every((rule) => rule.scopes.every((s) => granted.includes(s)));
    lines.push({
      name: 'scopes',
      ok: allowedEverywhere ? true : 'note',
      text: `scope "${granted.join(' ')}"; ${rules.join('; ') || 'no scope rules'}; other paths need no scope`,
    });
    return lines;
  }

  // ---- rendering -------------------------------------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderParts(token) {
    const box = $('token-parts');
    box.replaceChildren();
    if (!token) return;
    const classes = ['part-h', 'part-p', 'part-s'];
    token.split('.').forEach((part, index) => {
      if (index > 0) box.append(element('span', 'dot', '.'));
      box.append(element('span', classes[index] || 'part-x', part));
    });
  }

  function renderTimes(claims) {
    const list = $('times');
    list.replaceChildren();
    if (!claims) return;
    const t = now();
    for (const [name, label] of [['iat', 'issued'], ['nbf', 'valid from'], ['exp', 'expires']]) {
      const value = claims[name];
      if (typeof value !== 'number') continue;
      list.append(element('dt', '', `${name} (${label})`));
      let relative;
      if (name === 'exp') {
        relative = value > t ? `expires in ${span(value - t)}` : `expired ${span(t - value)} ago`;
      } else {
        relative = value > t ? `in ${span(value - t)}` : `${span(t - value)} ago`;
      }
      const dd = element('dd', '');
      dd.append(element('time', '', localTime(value)), ` — ${relative}`);
      dd.id = `time-${name}`;
      list.append(dd);
    }
  }

  function renderChecks(decoded) {
    const list = $('checks');
    const verdict = $('verdict');
    list.replaceChildren();
    verdict.className = 'verdict';
    const token = $('token').value.trim();
    if (!token) {
      verdict.textContent = 'No token: the gateway answers 401 with a bare "Bearer" challenge (RFC 6750 §3).';
      verdict.classList.add('bad');
      return;
    }
    if (decoded.error || !decoded.claims) {
      list.append(checkLine({ name: 'format', ok: false, text: decoded.error }));
      verdict.textContent = 'The gateway will answer 401 invalid_token ("malformed token").';
      verdict.classList.add('bad');
      return;
    }
    const lines = checks(decoded);
    lines.forEach((line) => list.append(checkLine(line)));
    const failed = lines.filter((line) => line.ok === false && line.name !== 'scopes');
    const scopes = lines.find((line) => line.name === 'scopes');
    if (failed.length) {
      verdict.textContent = `The gateway will refuse it: 401 invalid_token (${failed.map((l) => l.name).join(', ')}).`;
      verdict.classList.add('bad');
    } else if (lines.some((line) => line.ok === null)) {
      verdict.textContent = 'Claims pass; the signature is the gateway\'s to check.';
    } else {
      const paths = settings.scope_rules
        .filter((rule) => !rule.scopes.every((s) => scopesOf(decoded.claims).includes(s)))
        .map((rule) => rule.prefix);
      verdict.textContent = paths.length
        ? `The gateway will accept it: 200 and the claims forwarded — except 403 on ${paths.join(', ')}.`
        : 'The gateway will accept it: 200 and the claims forwarded, on every path.';
      verdict.classList.add(scopes.ok === true ? 'good' : 'partial');
    }
  }

  function checkLine(line) {
    const kind = { true: 'ok', false: 'fail', note: 'note' }[String(line.ok)] || 'unknown';
    const item = element('li', kind);
    item.dataset.check = line.name;
    const mark = { ok: '✓', fail: '✗', note: '!', unknown: '?' }[kind];
    item.append(element('span', 'mark', mark), element('strong', '', line.name), ' ', element('span', '', line.text));
    return item;
  }

  function render() {
    const token = $('token').value.trim();
    const decoded = token ? decode(token) : { parts: [], header: null, claims: null, error: null };
    $('token-section').dataset.sub = decoded.claims && typeof decoded.claims.sub === 'string' ? decoded.claims.sub : '';
    renderParts(token);
    $('header-json').textContent = decoded.header ? JSON.stringify(decoded.header, null, 2) : '—';
    $('claims-json').textContent = decoded.claims ? JSON.stringify(decoded.claims, null, 2) : (decoded.error || '—');
    renderTimes(decoded.claims);
    renderChecks(decoded);
    return decoded;
  }

  /** Renders at once, then again when the signature check is done. */
  function update() {
    generation += 1;
    const mine = generation;
    signature = { ok: null, text: 'checking…' };
    const decoded = render();
    if (!decoded.header || !decoded.claims || decoded.error) return;
    checkSignature(decoded)
      .catch((err) => ({ ok: null, text: `checked by the gateway (this page could not: ${err.message})` }))
      .then((result) => {
        if (mine !== generation) return;
        signature = result;
        render();
      });
  }

  // ---- login -----------------------------------------------------------------------------------

  async function login(ttl) {
    const body = { username: $('username').value, password: $('password').value };
    if (ttl) body.ttl = ttl;
    const response = await fetch(settings.login, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const reason = answer.error_description || answer.error || response.statusText;
      throw new Error(`${response.status}: ${reason}`);
    }
    issued = answer.access_token;
    $('token').value = issued;
    update();
    return answer;
  }

  async function onLogin(event) {
    event.preventDefault();
    const status = $('login-status');
    status.className = 'status';
    if (!$('password').value) {
      status.textContent = 'Enter the password printed in the terminal.';
      status.classList.add('bad');
      $('password').focus();
      return;
    }
    status.textContent = 'Logging in…';
    const ttl = Number($('lifetime').value);
    try {
      const answer = await login(ttl === settings.lifetime_secs ? 0 : ttl);
      status.textContent = `Logged in as ${$('username').value}: a token valid ${span(answer.expires_in)}, scope "${answer.scope}". It is taken apart below.`;
      status.classList.add('good');
    } catch (err) {
      status.textContent = `Refused (${err.message}).`;
      status.classList.add('bad');
    }
  }

  // ---- API calls -------------------------------------------------------------------------------

  const MEANINGS = {
    200: 'OK: the gateway verified the token and forwarded the request to the upstream.',
    400: 'Bad request: the gateway refused the request before looking at the token.',
    401: 'Unauthorized: the gateway refused the request; the upstream never saw it.',
    403: 'Forbidden: the token is valid, but lacks a scope this path needs; the upstream never saw it.',
    503: 'Unavailable: the gateway has no usable keys yet.',
  };

  async function call(path, auth, label) {
    const result = $('result');
    const tokens = { issued, edited: $('token').value.trim(), none: '' };
    const token = tokens[auth] || '';
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    calls += 1;
    const seq = calls;
    let response;
    let body = null;
    let failure = null;
    try {
      response = await fetch(path, { headers, cache: 'no-store', credentials: 'omit', redirect: 'manual' });
      const text = await response.text();
      try {
        body = JSON.parse(text);
      } catch (err) {
        body = text;
      }
    } catch (err) {
      failure = err;
    }
    const shown = token ? `Authorization: Bearer ${token.slice(0, 16)}…` : '(no Authorization header)';
    $('result-request').textContent = `GET ${path}  ${shown}`;
    const upstream = $('result-upstream');
    upstream.replaceChildren();
    const status = $('result-status');
    status.className = 'code';
    if (failure) {
      status.textContent = 'not sent';
      status.classList.add('bad');
      $('result-meaning').textContent = `The browser refused to send it (${failure.message}); a token is one line of base64url and dots.`;
      $('result-challenge').textContent = '—';
      $('result-upstream-note').textContent = 'Nothing: the request was not sent.';
    } else {
      status.textContent = `${response.status} ${response.statusText}`;
      status.classList.add(response.ok ? 'good' : 'bad');
      let meaning = MEANINGS[response.status] || '';
      if (response.ok && auth === 'none') meaning = 'OK: a public path, forwarded without looking at any token.';
      if (!token && response.status === 401) meaning = 'Unauthorized: no token, so the challenge names only the scheme (RFC 6750 §3.1).';
      if (auth === 'issued' && !issued) meaning += ' (Log in first: there was no token to send.)';
      $('result-meaning').textContent = meaning;
      const challenge = response.headers.get('WWW-Authenticate');
      $('result-challenge').textContent = challenge || '— (none)';
      if (response.ok && body && typeof body === 'object' && body.headers) {
        const received = Object.entries(body.headers).filter(([name]) => name.startsWith('x-auth-'));
        $('result-upstream-note').textContent = received.length
          ? `It got ${body.method} ${body.path} with these headers, set by the gateway from the verified claims (any copy sent by a client is removed first). It never sees the token: Authorization is ${body.headers.authorization ? 'forwarded' : 'removed'}.`
          : `It got ${body.method} ${body.path} with no x-auth-* headers: no token was verified.`;
        for (const [name, value] of received) {
          upstream.append(element('dt', '', ''), element('dd', '', ''));
          upstream.lastChild.previousSibling.append(element('code', '', name));
          upstream.lastChild.append(element('code', '', Array.isArray(value) ? value.join(', ') : value));
          upstream.lastChild.dataset.header = name;
        }
      } else {
        $('result-upstream-note').textContent = 'Nothing: the gateway answered by itself.';
      }
    }
    result.hidden = false;
    $('result-empty').hidden = true;
    result.dataset.status = failure ? 'failed' : String(response.status);
    result.dataset.seq = String(seq);
    const entry = element('li', '', `${new Date().toLocaleTimeString()}  GET ${path} — ${label} → ${failure ? 'not sent' : response.status}`);
    $('history').prepend(entry);
    return failure ? null : response.status;
  }

  function onCall(event) {
    const button = event.currentTarget;
    const label = button.querySelector('small').textContent;
    call(button.dataset.path, button.dataset.auth, label);
  }

  /** Logs in for a short-lived token, calls with it at once, then again once the gateway's
   * leeway has passed too. The page waits (and shows how long); nothing else does. */
  async function onExpiry() {
    const status = $('expiry-status');
    status.className = 'status';
    if (!$('password').value) {
      status.textContent = 'Enter the password above first: this logs in again for a short-lived token.';
      status.classList.add('bad');
      $('password').focus();
      return;
    }
    const button = $('call-expiry');
    button.disabled = true;
    try {
      await login(settings.short_lifetime_secs);
      const exp = decode(issued).claims.exp;
      const refusedAt = exp + settings.leeway_secs;
      await call('/hello', 'issued', `short-lived token, right away`);
      await new Promise((resolve) => {
        const tick = () => {
          const left = refusedAt - now();
          if (left < 0) {
            resolve();
            return;
          }
          status.textContent = `A ${settings.short_lifetime_secs} s token: it expires at ${clock(exp)}; the gateway allows ${settings.leeway_secs} s of clock leeway, so it refuses it from ${clock(refusedAt)} — calling again in ${span(left + 1)} (start the gateway with --leeway 1s to wait less).`;
          setTimeout(tick, 1000);
        };
        tick();
      });
      await call('/hello', 'issued', 'short-lived token, after expiry');
      status.textContent = 'The same token, after its expiry and the leeway: refused with "token expired".';
    } catch (err) {
      status.textContent = `Could not get a short-lived token (${err.message}).`;
      status.classList.add('bad');
    } finally {
      button.disabled = false;
    }
  }

  // ---- set-up ----------------------------------------------------------------------------------

  function tamper() {
    const field = $('token');
    const token = field.value.trim();
    const dot = token.lastIndexOf('.');
    if (dot < 0 || dot + 10 >= token.length) return;
    const at = dot + 10;
    const swapped = token[at] === 'A' ? 'B' : 'A';
    field.value = token.slice(0, at) + swapped + token.slice(at + 1);
    update();
  }

  async function start() {
    const response = await fetch('/_demo/settings.json', { cache: 'no-store' });
    settings = await response.json();
    for (const user of settings.users) {
      const option = element('option', '', `${user.username} (scope "${user.scope}")`);
      option.value = user.username;
      $('username').append(option);
    }
    for (const [seconds, label] of [
      [settings.lifetime_secs, `${span(settings.lifetime_secs)} (the default)`],
      [settings.short_lifetime_secs, `${settings.short_lifetime_secs} s, to watch it expire`],
    ]) {
      const option = element('option', '', label);
      option.value = String(seconds);
      $('lifetime').append(option);
    }
    $('login-form').addEventListener('submit', onLogin);
    $('token').addEventListener('input', update);
    $('reset-token').addEventListener('click', () => { $('token').value = issued; update(); });
    $('tamper-token').addEventListener('click', tamper);
    $('clear-token').addEventListener('click', () => { $('token').value = ''; update(); });
    for (const button of document.querySelectorAll('button[data-path]')) {
      button.addEventListener('click', onCall);
    }
    $('call-expiry').addEventListener('click', onExpiry);
    // The relative times and the expiry check follow the clock.
    setInterval(() => {
      const token = $('token').value.trim();
      if (!token) return;
      const decoded = decode(token);
      renderTimes(decoded.claims);
      if (!decoded.error && decoded.claims) renderChecks(decoded);
    }, 1000);
    update();
    document.body.dataset.ready = 'true';
  }

  document.addEventListener('DOMContentLoaded', () => {
    start().catch((err) => {
      $('login-status').textContent = `The page could not start: ${err.message}`;
    });
  });
})();
