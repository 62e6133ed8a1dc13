/*
 * Leadheat dashboard: the rules page (admins). The active rule set in an editor checked as one
 * types against the JSON Schema of GET /v1/rules/schema, a preview of the draft as a
 * background job, publish with a note, the versions with a diff between any two, and restore.
 *
 * The schema is checked here by a small validator of the keywords that schema uses (KEYWORDS
 * below; tests/browser/test_rules_page.py fails if the schema starts using another one), not a
 * general JSON Schema library: it runs under the page's CSP (no eval, which rules out the
 * compiling validators) and reports errors by path, which the position-keeping JSON parser
 * below turns into line numbers. The service's check has the last word (unique ids, hot at most
 * max_score, ...): its 422 details are shown in the same place.
 */
(() => {
  'use strict';
  const api = window.LeadheatApi;
  const v = window.LeadheatViews;
  const { h } = v;
  const $ = (id) => document.getElementById(id);
  const options = Object.assign({ jobPollMs: 400, checkDelayMs: 120 }, window.LEADHEAT_DASHBOARD);

  // --- JSON with positions ---------------------------------------------------------------------

  class JsonSyntaxError extends Error {
    constructor(message, offset) {
      super(message);
      this.offset = offset;
    }
  }

  /**
   * JSON.parse that also records where each value (and each object key) starts, by dotted path
   * as the service names fields ("behaviour.0.points"; "" is the document).
   */
  const parseJson = (text) => {
    const at = new Map();
    const keyAt = new Map();
    let i = 0;
    const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    const fail = (message) => { throw new JsonSyntaxError(message, i); };
    const space = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i += 1; };
    const describe = () => (i >= text.length ? 'the end of the text' : `'${text[i]}'`);
    const string = () => {
      const start = i;
      i += 1;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\') i += 1;
        else if (text[i] < ' ') fail('A line break or control character inside a string (write \\n).');
        i += 1;
      }
      if (i >= text.length) { i = start; fail('This string is not closed with ".'); }
      i += 1;
      try { return JSON.parse(text.slice(start, i)); } catch (e) { i = start; return fail('A bad escape (\\) in this string.'); }
    };
    const join = (path, key) => (path === '' ? String(key) : `${path}.${key}`);
    const value = (path) => {
      space();
      at.set(path, i);
      const c = text[i];
      if (c === '{') {
        i += 1;
        const object = {};
        space();
        if (text[i] === '}') { i += 1; return object; }
        for (;;) {
          space();
          if (text[i] !== '"') fail(`Expected a field name in double quotes, found ${describe()}.`);
          const keyStart = i;
          const key = string();
          keyAt.set(join(path, key), keyStart);
          space();
          if (text[i] !== ':') fail(`Expected ':' after "${key}", found ${describe()}.`);
          i += 1;
          object[key] = value(join(path, key));
          space();
          if (text[i] === ',') { i += 1; continue; }
          if (text[i] === '}') { i += 1; return object; }
          fail(`Expected ',' or '}' after a field, found ${describe()}.`);
        }
      }
      if (c === '[') {
        i += 1;
        const array = [];
        space();
        if (text[i] === ']') { i += 1; return array; }
        for (;;) {
          array.push(value(join(path, array.length)));
          space();
          if (text[i] === ',') { i += 1; continue; }
          if (text[i] === ']') { i += 1; return array; }
          fail(`Expected ',' or ']' after an item, found ${describe()}.`);
        }
      }
      if (c === '"') return string();
      for (const [word, literal] of [['true', true], ['false', false], ['null', null]]) {
        if (text.startsWith(word, i)) { i += word.length; return literal; }
      }
      NUMBER.lastIndex = i;
      const number = NUMBER.exec(text);
      if (number) { i += number[0].length; return Number(number[0]); }
      return fail(`Expected a value, found ${describe()}.`);
    };
    const document = value('');
    space();
    if (i < text.length) fail(`Unexpected ${describe()} after the end of the rule set.`);
    return { document, at, keyAt };
  };

  /** 1-based line of a character offset. */
  const lineOf = (text, offset) => {
    let line = 1;
    for (let k = 0; k < offset && k < text.length; k += 1) if (text.charCodeAt(k) === 10) line += 1;
    return line;
  };

  // --- the schema's keywords -------------------------------------------------------------------

  /** The JSON Schema keywords checked here; the others the schema has are annotations. */
  const KEYWORDS = [
    '$ref', 'type', 'const', 'enum', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
    'minLength', 'maxLength', 'pattern', 'items', 'minItems', 'maxItems', 'properties', 'required',
    'additionalProperties', 'allOf', 'anyOf', 'oneOf', 'discriminator',
  ];
  const ANNOTATIONS = ['$schema', '$defs', 'title', 'description', 'default', 'examples', 'format'];

  const kindOf = (x) => (x === null ? 'null' : Array.isArray(x) ? 'array' : typeof x);
  const isType = (type, x) => (type === 'integer' ? Number.isInteger(x) : kindOf(x) === type);
  const A_TYPE = { string: 'a text', number: 'a number', integer: 'a whole number', boolean: 'true or false', object: 'an object {…}', array: 'a list […]', null: 'null' };
  const show = (x) => JSON.stringify(x);
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const parentOf = (path) => (path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : '');
  const join = (path, key) => (path === '' ? String(key) : `${path}.${key}`);

  /** A validator of `schema` (its $refs point into its own $defs): value -> [{path, message}]. */
  const validator = (root) => {
    const resolve = (ref) => {
      const name = decodeURIComponent(ref.replace(/^#\/\$defs\//, ''));
      const found = (root.$defs || {})[name];
      if (!found) throw new Error(`Unknown $ref ${ref}`);
      return found;
    };
    const expand = (schema) => {
      if (!schema.$ref) return schema;
      const { $ref, ...rest } = schema;
      return { ...expand(resolve($ref)), ...rest };
    };
    const form = (schema, hint) => {
      const about = schema.description || (hint && hint.description);
      const examples = schema.examples || (hint && hint.examples);
      const eg = examples && examples.length ? `e.g. ${examples.slice(0, 3).map(show).join(', ')}` : `matching ${schema.pattern}`;
      return `is not in the expected form (${about ? `${about}; ` : ''}${eg})`;
    };

    const check = (raw, x, path, out, hint) => {
      const schema = expand(raw);
      const error = (message, keyword, at = path) => out.push({ path: at, message, keyword });
      if (schema.type !== undefined) {
        const types = [].concat(schema.type);
        if (!types.some((t) => isType(t, x) || (t === 'number' && typeof x === 'number'))) {
          error(`must be ${types.map((t) => A_TYPE[t] || t).join(' or ')}`, 'type');
          return;
        }
      }
      if (schema.const !== undefined && !same(schema.const, x)) error(`must be ${show(schema.const)}`, 'const');
      if (schema.enum && !schema.enum.some((e) => same(e, x))) error(`must be one of ${schema.enum.map(show).join(', ')}`, 'enum');
      if (typeof x === 'number') {
        if (schema.minimum !== undefined && x < schema.minimum) error(`must be at least ${schema.minimum}`, 'minimum');
        if (schema.maximum !== undefined && x > schema.maximum) error(`must be at most ${schema.maximum}`, 'maximum');
        if (schema.exclusiveMinimum !== undefined && x <= schema.exclusiveMinimum) error(`must be more than ${schema.exclusiveMinimum}`, 'exclusiveMinimum');
        if (schema.exclusiveMaximum !== undefined && x >= schema.exclusiveMaximum) error(`must be less than ${schema.exclusiveMaximum}`, 'exclusiveMaximum');
      }
      if (typeof x === 'string') {
        const length = [...x].length;
        if (schema.minLength !== undefined && length < schema.minLength) error(schema.minLength === 1 ? 'must not be empty' : `must be at least ${schema.minLength} characters`, 'minLength');
        if (schema.maxLength !== undefined && length > schema.maxLength) error(`must be at most ${schema.maxLength} characters`, 'maxLength');
        if (schema.pattern !== undefined) {
          let ok = true;
          try { ok = new RegExp(schema.pattern, 'u').test(x); } catch (e) { ok = true; /* a pattern JS cannot read: the service checks */ }
          if (!ok) error(form(schema, hint), 'pattern');
        }
      }
      if (Array.isArray(x)) {
        if (schema.minItems !== undefined && x.length < schema.minItems) error(schema.minItems === 1 ? 'must not be empty' : `must have at least ${schema.minItems} items`, 'minItems');
        if (schema.maxItems !== undefined && x.length > schema.maxItems) error(`must have at most ${schema.maxItems} items`, 'maxItems');
        if (schema.items) x.forEach((item, index) => check(schema.items, item, join(path, index), out));
      }
      if (kindOf(x) === 'object') {
        const properties = schema.properties || {};
        (schema.required || []).forEach((name) => {
          if (!(name in x)) error(`"${name}" is required`, 'required');
        });
        Object.entries(x).forEach(([key, item]) => {
          if (properties[key]) check(properties[key], item, join(path, key), out);
          else if (schema.additionalProperties === false) {
            const known = Object.keys(properties);
            error(`unknown field "${key}" (known: ${known.join(', ')})`, 'additionalProperties', join(path, key));
          } else if (kindOf(schema.additionalProperties) === 'object') check(schema.additionalProperties, item, join(path, key), out);
        });
      }
      (schema.allOf || []).forEach((part) => check(part, x, path, out, schema));
      if (schema.discriminator && kindOf(x) === 'object') {
        const { propertyName, mapping } = schema.discriminator;
        const tag = x[propertyName];
        if (mapping[tag]) check({ $ref: mapping[tag] }, x, path, out);
        else if (tag === undefined) error(`"${propertyName}" is required: one of ${Object.keys(mapping).map(show).join(', ')}`, 'required');
        else error(`must be one of ${Object.keys(mapping).map(show).join(', ')}`, 'enum', join(path, propertyName));
        return;
      }
      const branches = schema.oneOf || schema.anyOf;
      if (branches) alternatives(branches, Boolean(schema.oneOf), schema, x, path, out);
    };

    /** anyOf / oneOf: the errors of the one branch the value was meant for (its type, and the
     * const or enum of its own fields, fit), else one message naming the forms allowed. */
    const alternatives = (branches, exactlyOne, schema, x, path, out) => {
      const results = branches.map((branch) => {
        const errors = [];
        check(branch, x, path, errors, schema);
        return errors;
      });
      const passed = results.filter((errors) => errors.length === 0).length;
      if (exactlyOne ? passed === 1 : passed > 0) return;
      if (passed > 1) {
        out.push({ path, message: 'fits more than one of the allowed forms', keyword: 'oneOf' });
        return;
      }
      const deciding = (e) => (e.path === path && ['type', 'const', 'enum'].includes(e.keyword))
        || (parentOf(e.path) === path && e.path !== path && ['const', 'enum'].includes(e.keyword));
      const meant = results.filter((errors) => !errors.some(deciding));
      if (meant.length) {
        out.push(...meant.reduce((best, errors) => (errors.length < best.length ? errors : best)));
        return;
      }
      if (out.some((e) => e.path === path || e.path.startsWith(`${path}.`))) return; // said already
      const types = branches.flatMap((b) => [].concat(expand(b).type || [])).filter((t, k, all) => all.indexOf(t) === k);
      out.push({ path, message: types.length ? `must be ${types.map((t) => A_TYPE[t] || t).join(' or ')}` : 'fits none of the allowed forms', keyword: 'anyOf' });
    };

    return (document) => {
      const errors = [];
      check(root, document, '', errors);
      return errors;
    };
  };

  // --- the page --------------------------------------------------------------------------------

  const state = {
    admin: false, loaded: false, schema: null, validate: null, example: null, active: null,
    activeText: '', versions: [], job: null, checkTimer: 0, errors: [],
  };
  const TEMPERATURES = ['hot', 'warm', 'cold'];

  const editor = () => $('rules-editor');
  const status = (text, kind) => {
    const el = $('rules-status');
    el.textContent = text || '';
    el.className = `rules-status${kind ? ` is-${kind}` : ''}`;
    el.hidden = !text;
  };
  const failed = (error, what) => status(`${what}: ${error.message}${error.status ? ` (${error.status})` : ''}`, 'error');
  const toText = (document) => `${JSON.stringify(document, null, 2)}\n`;
  /** The document as GET answers it, without what the service adds (it ignores them when sent). */
  const definitionOf = (view) => {
    const { version, created_at: createdAt, active, ...rest } = view;
    return rest;
  };

  // The editor: line numbers, error marks, and the check as one types.
  const drawGutter = () => {
    const text = editor().value;
    const lines = text.split('\n').length;
    const bad = new Set(state.errors.map((e) => e.line).filter(Boolean));
    const gutter = $('rules-gutter');
    if (gutter.childElementCount !== lines || gutter.dataset.bad !== [...bad].join()) {
      const rows = [];
      for (let n = 1; n <= lines; n += 1) rows.push(h('div', { class: bad.has(n) ? 'is-error' : null }, String(n)));
      gutter.replaceChildren(...rows);
      gutter.dataset.bad = [...bad].join();
    }
    gutter.scrollTop = editor().scrollTop;
  };

  /** The draft if it parses and fits the schema, else null; the errors are shown in place. */
  const checkDraft = () => {
    clearTimeout(state.checkTimer);
    const text = editor().value;
    let errors = [];
    let draft = null;
    try {
      const parsed = parseJson(text);
      draft = parsed.document;
      if (state.validate) {
        errors = state.validate(draft).map((e) => {
          const offset = e.keyword === 'additionalProperties' ? parsed.keyAt.get(e.path) : nearest(parsed.at, e.path);
          return { ...e, line: offset === undefined ? null : lineOf(text, offset) };
        });
      }
      state.positions = parsed;
    } catch (e) {
      if (!(e instanceof JsonSyntaxError)) throw e;
      errors = [{ path: null, message: `Not valid JSON: ${e.message}`, line: lineOf(text, e.offset) }];
      draft = null;
      state.positions = null;
    }
    showErrors(errors, 'schema');
    const dirty = text !== state.activeText;
    $('rules-dirty').hidden = !dirty;
    return errors.length ? null : draft;
  };
  const nearest = (at, path) => {
    for (let p = path; ; p = parentOf(p)) {
      if (at.has(p)) return at.get(p);
      if (p === '') return undefined;
    }
  };
  const laterCheck = () => {
    clearTimeout(state.checkTimer);
    state.checkTimer = setTimeout(checkDraft, options.checkDelayMs);
    drawGutter();
  };

  /** The errors of the draft (the schema's, or the service's 422 details) by line and path. */
  const showErrors = (errors, source) => {
    state.errors = errors;
    const list = $('rules-errors');
    list.dataset.source = source;
    list.replaceChildren(...errors.map((e) => h('li', { class: 'rules-error', dataset: { testid: 'rule-error', line: e.line || '', path: e.path || '' } },
      e.line ? h('button', { type: 'button', class: 'link rules-error-line', onclick: () => goToLine(e.line) }, `line ${e.line}`) : null,
      e.path ? h('code', null, e.path) : null,
      h('span', null, e.message))));
    list.hidden = errors.length === 0;
    $('rules-valid').hidden = errors.length > 0;
    editor().setAttribute('aria-invalid', errors.length ? 'true' : 'false');
    drawGutter();
  };
  /** The service's 422 `invalid_rule_set`: each detail names a `field` (a dotted path). */
  const showServiceErrors = (error) => {
    const text = editor().value;
    const at = state.positions ? state.positions.at : new Map();
    const errors = (error.details || []).map((d) => {
      const offset = d.field ? nearest(at, d.field) : undefined;
      return { path: d.field || null, message: d.message, line: offset === undefined ? null : lineOf(text, offset) };
    });
    showErrors(errors.length ? errors : [{ path: null, message: error.message, line: null }], 'service');
  };
  const goToLine = (line) => {
    const ta = editor();
    const lines = ta.value.split('\n');
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    ta.focus();
    ta.setSelectionRange(start, start + (lines[line - 1] || '').length);
    const lineHeight = parseFloat(getComputedStyle(ta).lineHeight) || 18;
    ta.scrollTop = Math.max(0, (line - 4) * lineHeight);
    drawGutter();
  };
  const onKey = (event) => {
    if (event.key !== 'Tab' || event.shiftKey) return; // Shift+Tab still leaves the editor
    event.preventDefault();
    const ta = editor();
    ta.setRangeText('  ', ta.selectionStart, ta.selectionEnd, 'end');
    laterCheck();
  };
  const setText = (text) => {
    editor().value = text;
    editor().scrollTop = 0;
    checkDraft();
  };

  // Loading
  const load = async () => {
    status('');
    try {
      const [schema, active, versions] = await Promise.all([
        state.schema ? { data: state.schema } : api.get('/v1/rules/schema'),
        api.get('/v1/rules'),
        api.get('/v1/rules/versions'),
      ]);
      state.schema = schema.data;
      state.validate = validator(state.schema);
      state.example = (state.schema.examples || [])[0] || null;
      $('rules-example').hidden = !state.example;
      setActive(active.data);
      renderVersions(versions.data.versions);
      state.loaded = true;
    } catch (e) {
      failed(e, 'Loading the rules');
    }
  };
  const setActive = (view) => {
    state.active = view;
    state.activeText = toText(definitionOf(view));
    $('rules-active').textContent = `v${view.version} · ${view.name}`;
    setText(state.activeText);
  };
  const reloadActive = async () => {
    const [active, versions] = await Promise.all([api.get('/v1/rules'), api.get('/v1/rules/versions')]);
    setActive(active.data);
    renderVersions(versions.data.versions);
  };

  // Preview
  const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
  const preview = async () => {
    const draft = checkDraft();
    const out = $('rules-preview');
    if (!draft) {
      status('Fix the errors shown under the editor first.', 'error');
      return;
    }
    status('');
    $('rules-preview-run').disabled = true;
    out.replaceChildren(progress({ status: 'pending', percent: 0, processed: 0, total: 0 }));
    try {
      let job = (await api.post('/v1/rules/preview/jobs?limit=100', draft)).data;
      state.job = job;
      while (job.status === 'pending' || job.status === 'running') {
        out.replaceChildren(progress(job));
        await sleep(options.jobPollMs);
        job = (await api.get(job.url)).data;
        state.job = job;
      }
      state.job = null;
      if (job.status === 'done') renderPreview(out, job.result, draft);
      else out.replaceChildren(h('p', { class: job.status === 'failed' ? 'form-error' : 'muted' }, job.status === 'failed' ? `The preview failed: ${job.error || 'unknown error'}` : 'The preview was cancelled.'));
    } catch (e) {
      state.job = null;
      out.replaceChildren();
      if (e.code === 'invalid_rule_set') showServiceErrors(e);
      else failed(e, 'Previewing');
    } finally {
      $('rules-preview-run').disabled = false;
    }
  };
  const progress = (job) => h('div', { class: 'rules-progress', dataset: { testid: 'preview-progress', status: job.status } },
    h('div', { class: 'rules-progress-head' },
      h('span', null, job.status === 'pending' ? 'Waiting for a worker…' : `Replaying stored events: ${v.number(job.processed)} of ${v.number(job.total)} leads`),
      job.id ? h('button', { type: 'button', class: 'btn btn-small btn-quiet', dataset: { testid: 'preview-cancel' }, disabled: job.cancel_requested, onclick: () => cancel(job) }, job.cancel_requested ? 'Cancelling…' : 'Cancel') : null),
    v.bar(job.percent || 0, 100, 'bar-funnel'));
  const cancel = async (job) => {
    try { await api.post(`${job.url}/cancel`); } catch (e) { if (e.status !== 409) failed(e, 'Cancelling the preview'); }
  };

  /** A rule's name for people: its label and id, from the draft. */
  const ruleName = (draft, id) => {
    if (!id) return 'The rule set';
    const rule = ['behaviour', 'fit', 'hard'].flatMap((k) => draft[k] || []).find((r) => r && r.id === id);
    return rule && rule.label ? `${rule.label} (${id})` : id;
  };
  /** Any value of an answer as text: lists of objects by their `text`, label or id. */
  const asText = (x) => {
    if (x == null) return '–';
    if (Array.isArray(x)) return x.map(asText).join('; ');
    if (typeof x === 'object') {
      if (x.text) return x.text;
      const name = x.label || x.rule_id || x.id || x.name;
      const points = x.points != null ? x.points : x.delta;
      if (name != null) return points != null ? `${name} ${points > 0 ? '+' : ''}${v.number(points, 1)}` : String(name);
      return Object.entries(x).map(([k, val]) => `${k}: ${asText(val)}`).join(', ');
    }
    return typeof x === 'number' ? v.number(x, 2) : String(x);
  };
  const CHANGE_FIELDS = new Set(['lead_id', 'from', 'to', 'score_active', 'score_draft', 'label', 'name', 'email', 'city']);
  const whoMoves = (c) => c.label || c.name || c.email || `Lead ${String(c.lead_id).slice(0, 8)}`;

  const renderPreview = (out, result, draft) => {
    const counts = h('table', { class: 'rules-counts', dataset: { testid: 'preview-counts' } },
      h('thead', null, h('tr', null, h('th', null, ''), h('th', null, 'active'), h('th', null, 'draft'), h('th', null, 'change'))),
      h('tbody', null, TEMPERATURES.map((t) => {
        const before = result.active[t];
        const after = result.draft[t];
        return h('tr', { dataset: { temperature: t } }, h('th', null, v.tempPill(t)), h('td', null, v.number(before)), h('td', { dataset: { testid: `draft-${t}` } }, v.number(after)),
          h('td', { class: after > before ? 'is-up' : after < before ? 'is-down' : 'muted' }, after === before ? '–' : `${after > before ? '+' : ''}${after - before}`));
      })));
    const warnings = result.warnings || [];
    out.replaceChildren(...[
      h('p', { class: 'muted small', dataset: { testid: 'preview-summary' } },
        `${v.number(result.leads)} leads, ${v.number(result.events)} events replayed against v${result.active_version}, as of ${new Date(result.evaluated_at).toLocaleString()}. Nothing is published.`),
      counts,
      warnings.length ? h('div', { class: 'rules-warnings' }, h('h4', null, `${warnings.length} warning${warnings.length === 1 ? '' : 's'}`),
        h('ul', { dataset: { testid: 'preview-warnings' } }, warnings.map((w) => h('li', { class: 'rules-warning', dataset: { testid: 'rule-warning', rule: w.rule || '', code: w.code } },
          h('strong', null, ruleName(draft, w.rule)), ' ', h('span', null, w.message))))) : null,
      h('h4', { dataset: { testid: 'preview-changed' } }, result.changed ? `${v.number(result.changed)} lead${result.changed === 1 ? '' : 's'} change temperature` : 'No lead changes temperature'),
      result.changes.length ? h('ol', { class: 'rules-changes', dataset: { testid: 'preview-changes' } }, result.changes.map((c) => h('li', { class: 'rules-change', dataset: { testid: 'preview-change', leadId: c.lead_id } },
        h('div', { class: 'rules-change-head' },
          h('span', { class: 'rules-change-who' }, whoMoves(c), c.city ? h('span', { class: 'muted small' }, ` · ${c.city}`) : null),
          v.tempPill(c.from), h('span', { class: 'muted' }, '→'), v.tempPill(c.to),
          h('span', { class: 'rules-change-score' }, `${v.number(c.score_active, 1)} → ${v.number(c.score_draft, 1)}`)),
        Object.entries(c).filter(([k, val]) => !CHANGE_FIELDS.has(k) && val != null && !(Array.isArray(val) && !val.length)).map(([k, val]) =>
          h('div', { class: 'muted small rules-change-more' }, `${v.humanize(k)}: ${asText(val)}`))))) : null,
      result.changes_truncated ? h('p', { class: 'muted small' }, `The first ${result.changes.length} are listed.`) : null,
    ].filter(Boolean));
  };

  // Publish and restore: both ask for a note.
  const askNote = (title, note, action) => {
    const dialog = $('rules-dialog');
    $('rules-dialog-title').textContent = title;
    $('rules-note').value = note || '';
    $('rules-dialog-error').hidden = true;
    state.onConfirm = action;
    dialog.showModal();
    $('rules-note').focus();
  };
  const confirmNote = async (event) => {
    event.preventDefault();
    const note = $('rules-note').value.trim();
    if (!note) {
      $('rules-dialog-error').textContent = 'Say in a few words why: it is shown in the versions.';
      $('rules-dialog-error').hidden = false;
      return;
    }
    $('rules-confirm').disabled = true;
    let published;
    try {
      published = await state.onConfirm(note);
      $('rules-dialog').close();
    } catch (e) {
      if (e.code === 'invalid_rule_set') {
        $('rules-dialog').close();
        showServiceErrors(e);
      } else {
        $('rules-dialog-error').textContent = e.message;
        $('rules-dialog-error').hidden = false;
      }
    } finally {
      $('rules-confirm').disabled = false;
    }
    if (published) afterPublish(published).catch((e) => failed(e, `Version ${published.version} is published; loading it`));
  };
  const publish = () => {
    const draft = checkDraft();
    if (!draft) {
      status('Fix the errors shown under the editor first.', 'error');
      return;
    }
    askNote('Publish this rule set', '', async (note) =>
      (await api.request('PUT', `/v1/rules?${new URLSearchParams({ note })}`, { body: draft })).data);
  };
  const restore = (version) => askNote(`Restore version ${version} as a new version`, `restored from version ${version}`, async (note) =>
    (await api.post(`/v1/rules/versions/${version}/restore?${new URLSearchParams({ note })}`)).data);

  /** A new version: say so with its warnings, follow its re-scoring, show it in the editor. */
  const afterPublish = async (published) => {
    const warnings = published.warnings || [];
    const rescoring = (job) => (job.status === 'done' ? 'leads re-scored' : job.status === 'failed' ? `re-scoring failed: ${job.error}` : `re-scoring ${v.number(job.percent)}%`);
    status(`Published version ${published.version}: ${rescoring(published.job)}.${warnings.length ? ` ${warnings.length} warning${warnings.length === 1 ? '' : 's'}: ${warnings.map((w) => w.message).join(' ')}` : ''}`, 'ok');
    await reloadActive();
    let job = published.job;
    while (job.status === 'pending' || job.status === 'running') {
      await sleep(options.jobPollMs * 2);
      job = (await api.get(job.url)).data;
      status(`Published version ${published.version}: ${rescoring(job)}.`, job.status === 'failed' ? 'error' : 'ok');
    }
  };

  // Versions and the diff
  const renderVersions = (versions) => {
    state.versions = versions;
    $('rules-versions').replaceChildren(...versions.map((row) => h('li', { class: 'rules-version', dataset: { testid: 'rule-version', version: row.version } },
      h('div', { class: 'rules-version-head' },
        h('strong', null, `v${row.version}`),
        row.active ? h('span', { class: 'status status-contacted' }, 'active') : null,
        h('span', { class: 'muted small' }, `${row.name || ''} · ${new Date(row.created_at).toLocaleString()}`),
        row.active ? null : h('button', { type: 'button', class: 'btn btn-small btn-quiet', dataset: { testid: 'restore-version' }, onclick: () => restore(row.version) }, 'Restore')),
      h('div', { class: 'small', dataset: { testid: 'version-note' } }, row.note || h('span', { class: 'muted' }, 'no note')),
      h('div', { class: 'muted small', dataset: { testid: 'version-author' } }, row.author ? `by ${row.author}` : 'author not recorded'))));
    const pick = (id, selected) => {
      const select = $(id);
      select.replaceChildren(...versions.map((row) => h('option', { value: row.version, selected: row.version === selected }, `v${row.version}${row.note ? ` · ${row.note.slice(0, 40)}` : ''}`)));
    };
    pick('diff-from', versions.length > 1 ? versions[1].version : versions.length ? versions[0].version : null);
    pick('diff-to', versions.length ? versions[0].version : null);
    $('rules-compare').hidden = versions.length < 2;
  };
  const compare = async (event) => {
    event.preventDefault();
    const from = $('diff-from').value;
    const to = $('diff-to').value;
    try {
      renderDiff((await api.get(`/v1/rules/versions/${from}/diff/${to}`)).data);
    } catch (e) {
      failed(e, 'Comparing versions');
    }
  };
  const value = (x) => (x === null || x === undefined ? h('span', { class: 'muted' }, '—') : h('code', null, typeof x === 'string' ? x : JSON.stringify(x)));
  const fieldRows = (changes) => h('table', { class: 'rules-fields' }, h('tbody', null, changes.map((c) => h('tr', { dataset: { testid: 'diff-field', path: c.path } },
    h('th', null, h('code', null, c.path)), h('td', { class: 'diff-old' }, value(c.old)), h('td', { class: 'muted' }, '→'), h('td', { class: 'diff-new' }, value(c.new))))));
  const ruleLine = (r) => `${r.rule.label ? `${r.rule.label} ` : ''}(${r.id}) · ${r.kind}${r.rule.event ? ` · ${r.rule.event}` : ''}`;
  const renderDiff = (diff) => {
    const empty = !diff.added.length && !diff.removed.length && !diff.changed.length && !diff.settings.length;
    $('rules-diff').replaceChildren(...[
      h('h4', null, `From v${diff.from} to v${diff.to}`),
      empty ? h('p', { class: 'muted', dataset: { testid: 'diff-none' } }, 'The two versions have the same rules.') : null,
      diff.added.length ? h('div', { class: 'diff-part' }, h('h5', null, 'Added'), h('ul', null, diff.added.map((r) => h('li', { class: 'diff-added', dataset: { testid: 'diff-added', rule: r.id } }, `+ ${ruleLine(r)}`)))) : null,
      diff.removed.length ? h('div', { class: 'diff-part' }, h('h5', null, 'Removed'), h('ul', null, diff.removed.map((r) => h('li', { class: 'diff-removed', dataset: { testid: 'diff-removed', rule: r.id } }, `− ${ruleLine(r)}`)))) : null,
      diff.changed.length ? h('div', { class: 'diff-part' }, h('h5', null, 'Changed'), diff.changed.map((r) => h('div', { class: 'diff-changed', dataset: { testid: 'diff-changed', rule: r.id } },
        h('div', null, h('code', null, r.id), h('span', { class: 'muted small' }, ` ${r.kind}`)), fieldRows(r.changes)))) : null,
      diff.settings.length ? h('div', { class: 'diff-part', dataset: { testid: 'diff-settings' } }, h('h5', null, 'Settings'), fieldRows(diff.settings)) : null,
    ].filter(Boolean));
  };

  // Which page: the leads, or (admins) the rules at #rules.
  const route = () => {
    const rules = state.admin && location.hash === '#rules';
    document.body.classList.toggle('on-rules', rules);
    $('rules-page').hidden = !rules;
    $('nav-leads').classList.toggle('is-active', !rules);
    $('nav-rules').classList.toggle('is-active', rules);
    if (rules && !state.loaded) load();
  };

  const init = () => {
    editor().addEventListener('input', laterCheck);
    editor().addEventListener('scroll', drawGutter);
    editor().addEventListener('keydown', onKey);
    $('rules-preview-run').addEventListener('click', preview);
    $('rules-publish').addEventListener('click', publish);
    $('rules-reset').addEventListener('click', () => { if (state.active) setText(state.activeText); });
    $('rules-example').addEventListener('click', () => { if (state.example) setText(toText(definitionOf(state.example))); });
    $('rules-note-form').addEventListener('submit', confirmNote);
    $('rules-dialog-cancel').addEventListener('click', () => $('rules-dialog').close());
    $('rules-compare').addEventListener('submit', compare);
    window.addEventListener('hashchange', route);
  };

  window.LeadheatRules = {
    KEYWORDS, ANNOTATIONS, parseJson, validator,
    /** Signed in: the Rules link for admins (managers get 403 from the rules API anyway). */
    signedIn(admin) {
      state.admin = admin;
      $('nav').hidden = false;
      $('nav-rules').hidden = !admin;
      route();
    },
    signedOut() {
      Object.assign(state, { admin: false, loaded: false, active: null, activeText: '', job: null });
      $('nav').hidden = true;
      editor().value = '';
      $('rules-preview').replaceChildren();
      $('rules-diff').replaceChildren();
      status('');
      route();
    },
  };
  init();
})();
