// The admin API, called with fetch and the X-Admin-Key header. The key lives in this tab's
// session storage only: never in a URL, a cookie or local storage.

const STORAGE_KEY = 'fairuse.adminKey';

export const session = {
  get key() {
    return sessionStorage.getItem(STORAGE_KEY);
  },
  set(key) {
    sessionStorage.setItem(STORAGE_KEY, key);
  },
  clear() {
    sessionStorage.removeItem(STORAGE_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Relative to the page (`/admin/`), so the dashboard also works under a path prefix.
const BASE = new URL('../v1/admin/fair-use/', document.baseURI);

// A path segment. A uid may be `.` or `..` by the SPEC's character set, but no URL can carry
// such a segment (URL parsers resolve it away, escaped or not), so those are refused here rather
// than sent to another route.
const seg = (v) => {
  if (v === '.' || v === '..') {
    throw new ApiError(0, 'unaddressable', `"${v}" cannot be used in a URL path, so the API cannot be asked about it`);
  }
  return encodeURIComponent(v);
};

async function call(method, path, body, key = session.key) {
  const headers = { Accept: 'application/json', 'X-Admin-Key': key || '' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(new URL(path, BASE), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
  } catch (e) {
    throw new ApiError(0, 'network', `The service could not be reached (${e.message}).`);
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data?.error?.code || 'error', data?.error?.message || `${res.status} ${res.statusText}`);
    if (res.status === 401 && key === session.key) {
      window.dispatchEvent(new CustomEvent('fairuse:unauthorized', { detail: err }));
    }
    throw err;
  }
  return data;
}

export const api = {
  whoami: (key) => call('GET', 'whoami', undefined, key),
  flagged: (stage) => {
    const q = new URLSearchParams({ limit: '200' });
    if (stage) q.set('stage', stage);
    return call('GET', `flagged?${q}`);
  },
  user: (uid) => call('GET', `user/${seg(uid)}`),
  caseRef: (ref) => call('GET', `case/${seg(ref)}`),
  exempt: (uid) => call('GET', `exempt/${seg(uid)}`),
  resolve: (uid, eventId, outcome, notes) =>
    call('POST', `user/${seg(uid)}/resolve-event/${seg(eventId)}`, { outcome, notes }),
  reset: (uid, reason) => call('POST', `user/${seg(uid)}/reset`, { reason }),
  setStage: (uid, stage, until, reason) => {
    const body = { stage, reason };
    if (until) body.until = until;
    return call('POST', `user/${seg(uid)}/set-stage`, body);
  },
  setExempt: (uid, exempt) => call(exempt ? 'PUT' : 'DELETE', `exempt/${seg(uid)}`),
};
