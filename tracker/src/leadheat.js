/*
 * Leadheat browser tracker. Dependency-free; built and minified by build.mjs.
 * Sends Segment-spec messages in batches to POST {host}/v1/batch.
 * Every public method and event handler is wrapped: nothing ever throws into the page.
 */
((w, d) => {
  'use strict';
  const VERSION = __LH_VERSION__;
  const prior = w.leadheat;
  if (prior && prior.VERSION) return; // loaded twice: keep the first copy

  const nav = navigator;
  const loc = location;
  const now = () => Date.now();
  const iso = () => new Date().toISOString();
  const assign = Object.assign;
  const AID = 'lh_aid', VID = 'lh_vid', UID = 'lh_uid', QUEUE = 'lh_queue',
    CART = 'lh_cart', CHECKOUT = 'lh_co', LOCK = 'lh_lock', CONSENT = 'lh_consent', TAB = 'lh_tab';
  const VISIT_MS = 18e5; // a visit ends after 30 minutes without events
  const BODY_MAX = 6e4; // keepalive/beacon bodies must stay under 64 KB
  const LEAVE_GRACE_MS = 3e3; // time for orderCompleted() to arrive after leaving checkout
  const me = d.currentScript || d.querySelector('script[data-write-key]');

  let cfg = {};
  let inited = 0;
  let persist = 0; // may we touch cookies and storage? (consent, DNT)
  let consentGiven = null;
  const early = []; // calls made before init
  const log = (...a) => {
    if (cfg.debug) try { console.debug('[leadheat]', ...a); } catch (e) {}
  };
  const safe = (f) => function () {
    try { return f.apply(this, arguments); } catch (e) { log(e); }
  };
  const parse = (s) => {
    try { return JSON.parse(s); } catch (e) {}
  };

  const uuid = () => {
    const c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    const b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (let i = 0; i < 16; i++) b[i] = Math.random() * 256;
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const h = Array.from(b, (x) => (x + 256).toString(16).slice(1)).join('');
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join('-');
  };

  // Storage with an in-memory fallback: used when storage is disabled or full,
  // and for everything until we are allowed to persist (consent).
  const probe = (name) => {
    try {
      const s = w[name];
      s.setItem(LOCK + 't', '1');
      s.removeItem(LOCK + 't');
      return s;
    } catch (e) {}
  };
  const store = (s) => {
    const m = {};
    const o = {
      get(k) {
        if (persist && s) try {
          const v = s.getItem(k);
          if (v != null) return v;
        } catch (e) {}
        return k in m ? m[k] : null;
      },
      set(k, v) {
        if (persist && s) try {
          s.setItem(k, v);
          delete m[k];
          return;
        } catch (e) {}
        m[k] = v;
      },
      del(k) {
        delete m[k];
        try { s && s.removeItem(k); } catch (e) {}
      },
      move() {
        for (const k in m) o.set(k, m[k]);
      },
      keys() {
        const out = [];
        if (persist && s) try {
          for (let i = 0; i < s.length; i++) out.push(s.key(i));
        } catch (e) {}
        return out;
      },
    };
    return o;
  };
  const ls = store(probe('localStorage'));
  const ss = store(probe('sessionStorage'));
  const cookieMem = {};
  const cookie = {
    get(k) {
      if (persist) try {
        const r = d.cookie.match('(?:^|; )' + k + '=([^;]*)');
        if (r) return r[1];
      } catch (e) {}
      return k in cookieMem ? cookieMem[k] : null;
    },
    set(k, v, maxAge) {
      cookieMem[k] = v;
      if (persist) try {
        d.cookie = k + '=' + v + ';path=/;max-age=' + maxAge + ';SameSite=Lax' +
          (cfg.cookieDomain ? ';domain=' + cfg.cookieDomain : '') +
          (loc.protocol == 'https:' ? ';Secure' : '');
      } catch (e) {}
    },
  };
  const readConsent = () => {
    try { return localStorage.getItem(CONSENT); } catch (e) { return consentGiven; }
  };
  const dnt = () => cfg.respectDoNotTrack &&
    (nav.doNotTrack == '1' || w.doNotTrack == '1' || nav.globalPrivacyControl === true);
  const optedOut = () => dnt() || consentGiven == '0';
  const allowed = () => inited && !optedOut() && (consentGiven == '1' || !cfg.requireConsent);

  // Identity
  const anonymousId = () => {
    let id = cookie.get(AID) || ls.get(AID);
    if (!id) saveAnonymousId((id = uuid()));
    return id;
  };
  const saveAnonymousId = (id) => {
    ls.set(AID, id);
    cookie.set(AID, id, 31536e3); // also restores a lost cookie from localStorage
  };
  const visitId = () => {
    const v = (cookie.get(VID) || ss.get(VID) || '').split('.');
    const t = now();
    const id = v[0] && t - v[1] < VISIT_MS ? v[0] : uuid();
    const val = id + '.' + t;
    cookie.set(VID, val, VISIT_MS / 1e3);
    ss.set(VID, val);
    return id;
  };

  // Pages
  let referrer = d.referrer;
  let current; // the page the visitor is on, as of the last navigation
  const snapshot = () => ({
    url: loc.href.split('#')[0],
    path: loc.pathname,
    referrer,
    title: d.title,
    search: loc.search,
  });
  const campaign = (search) => {
    const q = new URLSearchParams(search);
    const c = {};
    for (const [k, f] of [['campaign', 'name'], ['source'], ['medium'], ['term'], ['content']]) {
      const v = q.get('utm_' + k);
      if (v) c[f || k] = v;
    }
    return c;
  };

  // Queue: persisted before sending, removed only once the server has answered.
  // One key per tab (lh_queue.<tab id kept in sessionStorage>), written by that tab only:
  // localStorage is not kept consistent between tabs from moment to moment, and tabs
  // rewriting one shared queue lose each other's events. A tab's queue outlives its pages;
  // the queue of a closed tab is taken over by the next tab that flushes.
  let tab = uuid();
  const queueKey = () => QUEUE + '.' + tab;
  const readQueue = (k) => (parse(ls.get(k)) || {}).q || [];
  const loadQueue = () => readQueue(queueKey());
  const saveQueue = (q, closing) => {
    if (q.length) ls.set(queueKey(), JSON.stringify({ t: now(), c: closing, q: q.slice(-cfg.maxQueue) }));
    else ls.del(queueKey());
  };
  const removeFromQueue = (ids) => saveQueue(loadQueue().filter((m) => !ids.has(m.messageId)));
  const adoptQueues = () => {
    let q = loadQueue(), n = q.length;
    for (const k of ls.keys()) {
      if (!k.startsWith(QUEUE + '.') || k == queueKey()) continue;
      const v = parse(ls.get(k));
      const age = v ? now() - v.t : 0;
      // closed a while ago (not a reload of that tab), or silent for 10 minutes
      if (v && ((v.c && age > 5e3) || age > 6e5)) {
        q = (v.q || []).concat(q);
        ls.del(k);
      }
    }
    if (q.length != n) saveQueue(q);
  };

  const send = (type, fields, page) => {
    if (!inited || optedOut()) return;
    page = page || (current && current.url == loc.href.split('#')[0] ? current : snapshot());
    const m = assign({
      type,
      messageId: uuid(),
      timestamp: iso(),
      anonymousId: anonymousId(),
    }, fields);
    const userId = ls.get(UID);
    if (userId) m.userId = userId;
    const c = campaign(page.search);
    m.context = {
      page: assign({}, page),
      userAgent: nav.userAgent,
      locale: nav.language,
      library: { name: 'leadheat.js', version: VERSION },
      visitId: visitId(),
    };
    if (Object.keys(c).length) m.context.campaign = c;
    const q = loadQueue();
    q.push(m);
    saveQueue(q);
    if (q.length >= cfg.maxBatch) flush();
    else schedule(cfg.flushInterval);
  };
  const track = (event, properties, page) =>
    send('track', { event: '' + event, properties: assign({}, properties) }, page);

  // Transport
  let busy = 0, failures = 0, retryAt = 0, timer = 0;
  const schedule = (ms) => {
    if (!timer) timer = setTimeout(() => { timer = 0; flush(); }, ms);
  };
  const reschedule = (ms) => {
    clearTimeout(timer);
    timer = 0;
    schedule(ms);
  };
  const endpoint = () => cfg.host + '/v1/batch';
  const body = (batch) => JSON.stringify({ batch, sentAt: iso(), writeKey: cfg.writeKey });
  const byteSize = (s) => new Blob([s]).size;
  // Takes the first messages of the queue that fit one request. Returns [batch, ids taken];
  // ids include messages too big to ever send, so that they get dropped.
  const pack = (q) => {
    const batch = [], ids = new Set();
    let size = 200;
    for (const m of q) {
      const n = byteSize(JSON.stringify(m)) + 1;
      if (n > BODY_MAX - 200) {
        ids.add(m.messageId);
        continue;
      }
      if (batch.length >= cfg.maxBatch || size + n > BODY_MAX) break;
      batch.push(m);
      ids.add(m.messageId);
      size += n;
    }
    return [batch, ids];
  };
  // One flush at a time, across tabs too (the queue is shared through localStorage).
  const lock = () => {
    const [owner, until] = (ls.get(LOCK) || '').split(' ');
    if (owner && owner != tab && until > now()) return 0;
    ls.set(LOCK, tab + ' ' + (now() + 15e3));
    return 1;
  };
  const unlock = () => {
    if ((ls.get(LOCK) || '').startsWith(tab)) ls.del(LOCK);
  };
  const ready = () => allowed() && cfg.host && cfg.writeKey;
  const flush = (force) => flushNow(force).catch(log);
  const flushNow = async (force) => {
    if (busy || !ready()) return;
    if (!force && now() < retryAt) return schedule(retryAt - now() + 9); // timers may fire early
    if (!lock()) return schedule(cfg.flushInterval);
    busy = 1;
    let retry = 0;
    try {
      adoptQueues();
      const [batch, ids] = pack(loadQueue());
      if (!ids.size) return;
      let done = !batch.length;
      if (!done) {
        const payload = body(batch);
        const post = (keepalive) => fetch(endpoint(), {
          method: 'POST',
          body: payload,
          headers: { 'Content-Type': 'text/plain' },
          keepalive,
          credentials: 'omit',
          signal: w.AbortSignal && AbortSignal.timeout ? AbortSignal.timeout(1e4) : void 0,
        });
        try {
          // keepalive requests share a 64 KB in-flight quota per page (beacons included),
          // released a moment after each response: when it is spent, send without keepalive.
          const r = await post(true).catch(() => post(false));
          const s = r.status;
          // 4xx other than 408/429: the batch itself is bad, and retrying will not fix it.
          done = r.ok || (s >= 400 && s < 500 && s != 408 && s != 429);
          if (!r.ok) log('batch answered', s);
        } catch (e) {
          log('batch failed', e);
        }
      }
      if (done) {
        removeFromQueue(ids);
        failures = retryAt = 0;
        if (loadQueue().length) reschedule(0);
      } else retry = 1;
    } finally {
      busy = 0;
      unlock();
    }
    if (retry) {
      const base = Math.min(6e4, 1e3 * 2 ** failures++);
      const wait = base / 2 + (Math.random() * base) / 2;
      retryAt = now() + wait;
      reschedule(wait);
    }
  };
  // Page being hidden or unloaded: hand the queue to sendBeacon. The messages stay queued
  // until a fetch gets a 2xx; a resend carries the same messageId and the server dedupes.
  const beaconed = new Set(); // pagehide often follows visibilitychange: do not send twice
  const beacon = () => {
    if (!ready() || nav.onLine === false) return;
    if (!nav.sendBeacon) return flush(1);
    let q = loadQueue().filter((m) => !beaconed.has(m.messageId));
    while (q.length) {
      const [batch, ids] = pack(q);
      if (!ids.size) break;
      if (batch.length && !nav.sendBeacon(endpoint(), new Blob([body(batch)], { type: 'text/plain' }))) break;
      ids.forEach((id) => beaconed.add(id));
      q = q.filter((m) => !ids.has(m.messageId));
    }
  };

  // Visible time on the current page
  let visibleSince = 0, visibleMs = 0;
  const visible = () => d.visibilityState != 'hidden';
  const tick = () => {
    const t = now();
    if (visibleSince) visibleMs += t - visibleSince;
    visibleSince = visible() ? t : 0;
  };
  const reportEngaged = (page, leaving) => {
    tick();
    const seconds = Math.round(visibleMs / 100) / 10;
    if (seconds >= 1) track('Page Engaged', { engaged_seconds: seconds, url: page.url }, page);
    if (seconds >= 1 || leaving) visibleMs = 0;
  };

  // Cart and checkout
  const loadCart = () => parse(ls.get(CART)) || { n: 0 };
  const saveCart = (c) => ls.set(CART, JSON.stringify(c.n > 0 ? c : { n: 0 }));
  const num = (x) => (x === '' || x == null || isNaN(x) ? void 0 : +x);
  const quantity = (p) => (num(p.quantity) > 0 ? +p.quantity : 1);
  const addToCart = (c, p, sign) => {
    const q = quantity(p) * sign, price = num(p.price);
    if (!(c.n > 0)) c = { n: 0, v: 0 };
    c.n = Math.max(0, c.n + q);
    if (price == null) c.u = 1; // value no longer known
    else c.v = Math.max(0, (c.v || 0) + price * q);
    if (p.currency) c.c = p.currency;
    return c;
  };
  const isCheckoutPath = (path) => {
    const p = cfg.checkoutPath;
    return p instanceof RegExp ? p.test(path) : !!p && path.startsWith(p);
  };
  // Checkout state of this visit: s = checkoutStarted() called, a = Cart Abandoned sent
  const loadCheckout = () => {
    const v = visitId();
    const c = parse(ls.get(CHECKOUT));
    return c && c.v == v ? c : { v };
  };
  const saveCheckout = (c) => ls.set(CHECKOUT, JSON.stringify(c));
  const inCheckout = () => isCheckoutPath(current.path) || loadCheckout().s;
  let leftPage = null, leftTimer = 0;
  const abandon = (page) => {
    clearTimeout(leftTimer);
    leftTimer = 0;
    const cart = loadCart(), co = loadCheckout();
    if (!(cart.n > 0) || co.a) return;
    co.a = 1;
    saveCheckout(co);
    const p = { item_count: cart.n, url: page.url };
    if (!cart.u) p.value = Math.round(cart.v * 100) / 100;
    if (cart.c) p.currency = cart.c;
    track('Cart Abandoned', p, page);
  };

  // Navigation (SPA and manual page calls)
  const leave = (from, to) => {
    reportEngaged(from, 1);
    if (isCheckoutPath(to.path)) {
      clearTimeout(leftTimer);
      leftTimer = 0;
    } else if (isCheckoutPath(from.path) && !loadCheckout().s) {
      // Left checkout inside the single-page shop: give orderCompleted() a moment first.
      leftPage = from;
      clearTimeout(leftTimer);
      leftTimer = setTimeout(safe(() => abandon(from)), LEAVE_GRACE_MS);
    }
  };
  const moved = () => {
    if (loc.href.split('#')[0] == current.url) return 0;
    const from = current;
    referrer = from.url;
    current = snapshot();
    leave(from, current);
    return 1;
  };
  const sendPage = (name, properties) => {
    current = snapshot();
    const f = { properties: assign({}, current, properties) };
    if (name != null) f.name = f.properties.name = '' + name;
    send('page', f, current);
  };
  const onNavigate = safe(() => {
    if (moved() && cfg.autoPage) sendPage();
  });
  const onHide = safe(() => {
    reportEngaged(current);
    if (leftTimer) abandon(leftPage);
    else if (inCheckout()) abandon(current);
    beacon();
  });
  const onVisibility = safe(() => (visible() ? tick() : onHide()));

  // Public API
  const api = {
    VERSION,
    push: safe((call) => {
      call = Array.from(call);
      const f = api[call[0]];
      if (typeof f == 'function' && call[0] != 'push') f.apply(api, call.slice(1));
    }),
    init: safe((options) => {
      if (inited) return;
      const tag = (me && me.dataset) || {};
      cfg = assign({
        writeKey: tag.writeKey,
        host: tag.host || (me && me.src ? new URL(me.src, loc.href).origin : ''),
        requireConsent: false,
        respectDoNotTrack: false,
        flushInterval: 1e3,
        maxBatch: 20,
        maxQueue: 500,
        cookieDomain: '',
        autoPage: true,
        checkoutPath: '/checkout',
        debug: false,
      }, options);
      cfg.host = ('' + (cfg.host || '')).replace(/\/+$/, '');
      for (const [k, dflt] of [['flushInterval', 1e3], ['maxBatch', 20], ['maxQueue', 500]]) {
        cfg[k] = cfg[k] >= 1 ? +cfg[k] : dflt;
      }
      consentGiven = readConsent();
      inited = 1;
      persist = allowed();
      if (persist) saveAnonymousId(anonymousId());
      ss.set(TAB, (tab = ss.get(TAB) || tab));
      current = snapshot();
      tick();
      const h = w.history;
      for (const name of ['pushState', 'replaceState']) {
        const original = h[name];
        h[name] = function () {
          const r = original.apply(this, arguments);
          setTimeout(onNavigate);
          return r;
        };
      }
      w.addEventListener('popstate', onNavigate);
      d.addEventListener('visibilitychange', onVisibility);
      w.addEventListener('pagehide', safe(() => {
        onHide();
        saveQueue(loadQueue(), 1); // other tabs may take this queue over if no page follows
      }));
      w.addEventListener('pageshow', safe(tick));
      w.addEventListener('online', safe(() => flush(1)));
      if (cfg.autoPage) sendPage();
      early.splice(0).forEach(api.push);
      schedule(cfg.flushInterval);
    }),
    consent: safe((granted) => {
      consentGiven = granted ? '1' : '0';
      try { localStorage.setItem(CONSENT, consentGiven); } catch (e) {}
      if (!inited) return;
      const was = persist;
      const keys = ls.keys().concat(AID, UID, CART, CHECKOUT, LOCK, queueKey());
      persist = allowed();
      if (persist && !was) {
        for (const s of [ls, ss]) s.move(); // events and ids kept in memory until now
        saveAnonymousId(anonymousId());
        visitId();
        flush(1);
      }
      if (!granted) {
        for (const k of keys) if (k.startsWith('lh_') && k != CONSENT) ls.del(k);
        ss.del(VID);
        ss.del(TAB);
        for (const k of [AID, VID]) {
          delete cookieMem[k];
          try {
            d.cookie = k + '=;path=/;max-age=0' + (cfg.cookieDomain ? ';domain=' + cfg.cookieDomain : '');
          } catch (e) {}
        }
      }
    }),
    track: (event, properties) => track(event, properties),
    page: (name, properties) => {
      if (name && typeof name == 'object') [name, properties] = [null, name];
      moved();
      sendPage(name, properties);
    },
    identify: (userId, traits) => {
      if (userId && typeof userId == 'object') [userId, traits] = [null, userId];
      if (userId != null && userId !== '') ls.set(UID, '' + userId);
      send('identify', { traits: assign({}, traits) });
    },
    reset: () => {
      ls.del(UID);
      saveAnonymousId(uuid());
    },
    flush: () => flush(1),
    _state: () => ({
      anonymousId: anonymousId(),
      userId: ls.get(UID),
      queue: loadQueue(),
      cart: loadCart(),
      allowed: !!allowed(),
      config: cfg,
    }),
  };
  const ecommerce = {
    productViewed: 'Product Viewed',
    productAdded: 'Product Added',
    productRemoved: 'Product Removed',
    checkoutStarted: 'Checkout Started',
    orderCompleted: 'Order Completed',
    subscribed: 'Subscribed',
    unsubscribed: 'Unsubscribed',
    contactRequested: 'Contact Requested',
  };
  for (const method in ecommerce) {
    api[method] = (properties) => {
      const p = assign({}, properties);
      track(ecommerce[method], p);
      if (method == 'productAdded') saveCart(addToCart(loadCart(), p, 1));
      if (method == 'productRemoved') saveCart(addToCart(loadCart(), p, -1));
      if (method == 'checkoutStarted') {
        if (Array.isArray(p.products)) {
          saveCart(p.products.reduce((c, item) => addToCart(c, assign({ currency: p.currency }, item), 1), { n: 0 }));
        }
        const total = num(p.value != null ? p.value : p.revenue != null ? p.revenue : p.total);
        const cart = loadCart();
        if (total != null && cart.n > 0) saveCart(assign(cart, { v: total, u: 0 }, p.currency ? { c: p.currency } : {}));
        saveCheckout({ v: visitId(), s: 1 });
      }
      if (method == 'orderCompleted') {
        saveCart({ n: 0 });
        saveCheckout({ v: visitId() });
        clearTimeout(leftTimer);
        leftTimer = 0;
      }
    };
  }
  // Wrap every method but push/init/consent (already wrapped): calls before init wait for it.
  for (const k in api) {
    const f = api[k];
    if (typeof f == 'function' && !/^(push|init|consent)$/.test(k)) {
      api[k] = safe(function () {
        if (!inited && k != '_state') return void early.push([k, ...arguments]);
        return f.apply(api, arguments);
      });
    }
  }

  try {
    w.leadheat = api;
    const calls = Array.isArray(prior) ? prior : [];
    for (const c of calls) if (c && c[0] == 'init') api.init(c[1]);
    if (!inited && me && me.dataset && me.dataset.writeKey) api.init();
    for (const c of calls) if (c && c[0] != 'init') api.push(c);
  } catch (e) {}
})(window, document);
