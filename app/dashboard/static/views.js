/*
 * Leadheat dashboard: DOM helpers, formatting, and the renderers of the lead detail and the
 * stats. Lead data comes from shop visitors, so it is only ever set as text, never as HTML.
 */
(() => {
  'use strict';
  const api = window.LeadheatApi;

  /** h('div', {class: 'x', dataset: {testid: 'y'}, onclick}, child, 'text', [more]) */
  const h = (tag, attrs, ...children) => {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'style') Object.assign(el.style, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    const add = (c) => {
      if (c == null || c === false) return;
      if (Array.isArray(c)) c.forEach(add);
      else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    };
    children.forEach(add);
    return el;
  };

  const pad = (n) => String(n).padStart(2, '0');
  /** mm:ss of a number of seconds (minutes may pass 59; past 99 minutes: whole hours). */
  const mmss = (seconds) => {
    const s = Math.floor(Math.abs(seconds));
    if (s >= 6000) return `${Math.floor(s / 3600)}h`;
    return `${pad(Math.floor(s / 60))}:${pad(s % 60)}`;
  };
  const duration = (seconds) => {
    if (seconds == null || Number.isNaN(+seconds)) return '–';
    const s = Math.round(+seconds);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  };
  const ago = (iso) => {
    if (!iso) return 'never';
    const s = (api.now() - Date.parse(iso)) / 1000;
    if (s < 45) return 'just now';
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return new Date(iso).toLocaleDateString();
  };
  const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const number = (x, digits = 0) => (x == null ? '–' : (+x).toLocaleString(undefined, { maximumFractionDigits: digits }));
  const percent = (x) => (x == null ? '–' : `${Math.round(x * 1000) / 10}%`);
  const humanize = (key) => key.replace(/_/g, ' ').replace(/^\w/, (c) => c.toUpperCase());
  const pathOf = (url) => {
    try {
      const u = new URL(url);
      return u.pathname + u.search;
    } catch (e) { return url || ''; }
  };
  /** A link for a URL from visitor data: http(s) only, opened without referrer. */
  const safeLink = (url, text, testid) => {
    let ok = false;
    try { ok = /^https?:$/.test(new URL(url).protocol); } catch (e) { ok = false; }
    if (!ok) return h('span', { dataset: testid ? { testid } : null }, text);
    return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', dataset: testid ? { testid } : null, title: url }, text);
  };

  const TEMPERATURES = ['hot', 'warm', 'cold'];
  const tempPill = (temperature) =>
    h('span', { class: `temp temp-${temperature}`, dataset: { testid: 'temperature' } }, temperature);

  /** The lead's interests as [{category, views}], whichever shape the API sends. */
  const interestsOf = (lead) => {
    const src = lead.top_interests || lead.interests || [];
    if (Array.isArray(src)) return src.map((x) => (typeof x === 'string' ? { category: x } : x));
    return Object.entries(src).map(([category, views]) => ({ category, views }))
      .sort((a, b) => (b.views || 0) - (a.views || 0));
  };

  /** The first-contact countdown: time left to contact_by, red when overdue. */
  const countdown = (lead) => {
    const el = h('div', { class: 'countdown', dataset: { testid: 'countdown' } });
    if (lead.first_contacted_at) {
      el.dataset.state = 'contacted';
      el.append(h('span', { class: 'countdown-label' }, 'contacted'), h('span', { class: 'countdown-sub' }, ago(lead.first_contacted_at)));
    } else if (lead.contact_by) {
      el.dataset.contactBy = lead.contact_by;
      el.append(h('span', { class: 'countdown-time' }), h('span', { class: 'countdown-sub' }));
      tickCountdown(el);
    } else {
      el.dataset.state = 'none';
    }
    return el;
  };
  const tickCountdown = (el) => {
    const left = (Date.parse(el.dataset.contactBy) - api.now()) / 1000;
    const overdue = left < 0;
    el.dataset.state = overdue ? 'overdue' : 'due';
    el.classList.toggle('is-overdue', overdue);
    el.firstChild.textContent = (overdue ? '−' : '') + mmss(left);
    el.lastChild.textContent = overdue ? 'overdue: contact now' : 'to first contact';
  };
  const tickCountdowns = (root) =>
    root.querySelectorAll('.countdown[data-contact-by]').forEach(tickCountdown);

  const bar = (value, max, cls) =>
    h('div', { class: 'bar-track' }, h('div', { class: `bar ${cls || ''}`, style: { width: `${max > 0 ? Math.max(0, Math.min(100, (100 * value) / max)) : 0}%` } }));

  const renderFunnel = (root, stats) => {
    const steps = stats.funnel || [];
    const max = Math.max(1, ...steps.map((s) => s.count));
    const temps = stats.by_temperature || {};
    const total = TEMPERATURES.reduce((n, t) => n + (temps[t] || 0), 0);
    const lost = Object.entries(stats.lost_by_reason || {}).filter(([, n]) => n > 0);
    root.replaceChildren(...[
      h('div', { class: 'funnel' }, steps.map((s) => h('div', { class: 'funnel-step', dataset: { testid: 'funnel-step', step: s.step } },
        h('span', { class: 'funnel-label' }, humanize(s.step)),
        bar(s.count, max, 'bar-funnel'),
        h('span', { class: 'funnel-count' }, number(s.count)),
        h('span', { class: 'funnel-rate muted small' }, s.conversion_rate == null ? '' : percent(s.conversion_rate))))),
      total ? h('div', { class: 'temp-split', title: 'Leads by temperature' }, TEMPERATURES.filter((t) => temps[t]).map((t) =>
        h('span', { class: `temp-split-part bg-${t}`, style: { flexGrow: temps[t] } }, `${t} ${temps[t]}`))) : null,
      lost.length ? h('p', { class: 'muted small' }, 'Lost: ', lost.map(([r, n]) => `${humanize(r)} ${n}`).join(' · ')) : null,
      (stats.moves || []).length ? h('p', { class: 'muted small', dataset: { testid: 'funnel-moves' } }, 'Moved: ',
        stats.moves.map((m) => `${m.from} → ${m.to} ${number(m.leads)}`).join(' · ')) : null,
    ].filter(Boolean));
  };

  /** Saved audiences: each one's members now (admins; a manager sees none). */
  const renderAudiences = (root, list) => {
    const audiences = list.data || [];
    root.replaceChildren(audiences.length
      ? h('ul', { class: 'audience-list' }, audiences.map((a) => h('li', { class: 'audience', dataset: { testid: 'audience', name: a.name } },
        h('span', { class: 'audience-name' }, a.name, ' '),
        h('span', { class: 'audience-count', dataset: { testid: 'audience-count' } }, number(a.members)),
        a.state === 'computing' ? h('span', { class: 'muted small' }, ' computing…') : null)))
      : h('p', { class: 'muted' }, 'No audiences yet.'));
  };

  /** Speed to lead: hot -> first contact (median, p90), overdue now, share within each mark. */
  const renderSpeed = (root, stats) => {
    const tile = (value, label, cls) => h('div', { class: `tile ${cls || ''}`, dataset: { testid: 'speed-tile' } },
      h('span', { class: 'tile-value' }, value), h('span', { class: 'tile-label muted small' }, label));
    const time = (s) => (s == null ? '–' : mmss(s));
    const marks = Object.entries(stats.within_minutes || {}).sort((a, b) => +a[0] - +b[0]);
    root.replaceChildren(...[
      h('div', { class: 'tiles' },
        tile(number(stats.hot_leads), 'turned hot'),
        tile(number(stats.contacted), 'contacted'),
        tile(time(stats.median_seconds), 'median to contact'),
        tile(time(stats.p90_seconds), '90% within'),
        tile(number(stats.overdue_now), 'overdue now', stats.overdue_now > 0 ? 'tile-alert' : '')),
      marks.length ? h('div', { class: 'funnel', title: 'Share of hot leads contacted within' }, marks.map(([minutes, share]) =>
        h('div', { class: 'funnel-step', dataset: { testid: 'speed-mark' } },
          h('span', { class: 'funnel-label' }, `≤ ${minutes} min`), bar(share, 1, +minutes <= 5 ? 'bar-speed' : 'bar-slow'),
          h('span', { class: 'funnel-count' }, percent(share)), h('span')))) : null,
    ].filter(Boolean));
  };

  const summarize = (props) => {
    const keys = ['name', 'category', 'price', 'quantity', 'value', 'item_count', 'phone', 'email', 'engaged_seconds', 'revenue', 'order_id'];
    return keys.filter((k) => props && props[k] != null && props[k] !== '').map((k) => `${k}: ${props[k]}`).join(' · ');
  };

  const renderBreakdown = (items) => {
    const rows = [...(items || [])].sort((a, b) => Math.abs(b.points) - Math.abs(a.points));
    const max = Math.max(1, ...rows.map((r) => Math.abs(r.points)));
    if (!rows.length) return h('p', { class: 'muted' }, 'No rule has scored yet.');
    return h('ol', { class: 'breakdown', dataset: { testid: 'breakdown' } }, rows.map((r) => h('li', { class: 'breakdown-item', dataset: { testid: 'breakdown-item', ruleId: r.rule_id } },
      h('span', { class: 'breakdown-label' }, r.label || r.rule_id, h('span', { class: 'muted small' }, ` ${r.kind}${r.events ? ` · ${r.events} event${r.events === 1 ? '' : 's'}` : ''}`)),
      bar(Math.abs(r.points), max, r.points < 0 ? 'bar-negative' : r.kind === 'hard' ? 'bar-hard' : 'bar-points'),
      r.kind === 'hard' && !r.points
        ? h('span', { class: 'breakdown-points breakdown-hot', title: 'A hard rule: hot whatever the score' }, 'hot')
        : h('span', { class: 'breakdown-points' }, (r.points > 0 ? '+' : '') + number(r.points, 1)),
      r.text ? h('span', { class: 'breakdown-why muted small', dataset: { testid: 'breakdown-why' } }, r.text) : null)));
  };

  const renderTimeline = (events) => {
    const rows = [...(events || [])].sort((a, b) => Date.parse(b.timestamp) - Date.parse(a.timestamp));
    if (!rows.length) return h('p', { class: 'muted' }, 'No events.');
    return h('ol', { class: 'timeline', dataset: { testid: 'timeline' } }, rows.map((e) => h('li', { class: 'timeline-item', dataset: { testid: 'timeline-item', type: e.type } },
      h('time', { datetime: e.timestamp, class: 'muted small' }, clock(e.timestamp)),
      h('div', null,
        h('strong', null, e.name || e.type),
        e.url ? h('span', { class: 'muted small' }, ' ', safeLink(e.url, pathOf(e.url))) : null,
        h('div', { class: 'muted small' }, summarize(e.properties))))));
  };

  window.LeadheatViews = {
    h, mmss, duration, ago, clock, number, percent, humanize, pathOf, safeLink,
    tempPill, interestsOf, countdown, tickCountdowns, bar,
    renderFunnel, renderSpeed, renderAudiences, renderBreakdown, renderTimeline, TEMPERATURES,
  };
})();
