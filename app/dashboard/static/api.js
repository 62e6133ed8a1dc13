/*
 * Leadheat dashboard: the API client. The secret key lives in sessionStorage only (this tab,
 * gone when it closes); it is sent as a Bearer header, never in a URL. A person signed in with
 * email and password has an HttpOnly session cookie instead (this script never sees it) and
 * sends the session's CSRF token, kept in memory, with every change.
 */
(() => {
  'use strict';
  const KEY = 'leadheat.secretKey';
  let memoryKey = null; // when sessionStorage is unavailable (sandboxed frames)
  let clockSkewMs = 0; // server time - this computer's time, from the Date header
  let csrfToken = null; // the session's, from sign-in or GET /v1/session

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || [];
    }
  }

  const key = {
    get() {
      try { return sessionStorage.getItem(KEY); } catch (e) { return memoryKey; }
    },
    set(value) {
      memoryKey = value;
      try { sessionStorage.setItem(KEY, value); } catch (e) { /* memory only */ }
    },
    clear() {
      memoryKey = null;
      try { sessionStorage.removeItem(KEY); } catch (e) { /* nothing stored */ }
    },
  };

  const noteClock = (response) => {
    const date = Date.parse(response.headers.get('Date') || '');
    if (!Number.isNaN(date)) {
      const skew = date - Date.now();
      // The Date header has 1 s resolution: correct only a clearly wrong clock.
      clockSkewMs = Math.abs(skew) > 2000 ? skew : 0;
    }
  };

  /**
   * One call to the service. Resolves {status, data, etag}; status 304 has no data.
   * Rejects with ApiError (status 0 when the service cannot be reached).
   */
  const request = async (method, path, options = {}) => {
    const secret = options.key || key.get();
    const headers = { Accept: 'application/json' };
    if (secret) headers.Authorization = 'Bearer ' + secret;
    else if (csrfToken && method !== 'GET') headers['X-CSRF-Token'] = csrfToken;
    if (options.etag) headers['If-None-Match'] = options.etag;
    let body;
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'same-origin' });
    } catch (e) {
      throw new ApiError(0, 'network', 'The service cannot be reached.');
    }
    noteClock(response);
    if (response.status === 304) return { status: 304, data: null, etag: options.etag };
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!response.ok) {
      const message = (data && data.message) || `${method} ${path} answered ${response.status}.`;
      throw new ApiError(response.status, (data && data.code) || 'http_error', message, data && data.details);
    }
    return { status: response.status, data, etag: response.headers.get('ETag') };
  };

  window.LeadheatApi = {
    ApiError,
    key,
    csrf: { set(value) { csrfToken = value; }, get: () => csrfToken },
    request,
    get: (path, options) => request('GET', path, options),
    patch: (path, body) => request('PATCH', path, { body }),
    post: (path, body) => request('POST', path, { body }),
    del: (path) => request('DELETE', path),
    now: () => Date.now() + clockSkewMs,
  };
})();
