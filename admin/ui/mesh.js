// The federation page of the gsio-relay admin listener (/ui): polls
// /api/v1/mesh and draws the relays on a circle (this relay on top, the
// others in peer id order), their links, and a table. Plain JavaScript,
// no dependencies. With an admin token, open /ui/?token=TOKEN: the token
// is kept in this tab's sessionStorage, taken out of the address bar, and
// sent as "Authorization: Bearer TOKEN". ?interval=MS sets the polling
// period (default 1500, at least 250). Every text from the API goes in
// with textContent, never as HTML.
'use strict';

(() => {
  const SVG = 'http://www.w3.org/2000/svg';
  const W = 1000, H = 620;
  const KEY = 'gsio-relay-admin-token';

  const params = new URLSearchParams(location.search);
  let token = params.get('token');
  if (token !== null) {
    try { sessionStorage.setItem(KEY, token); } catch (e) { /* storage off: keep it in memory */ }
    params.delete('token');
    const q = params.toString();
    history.replaceState(null, '', location.pathname + (q ? '?' + q : '') + location.hash);
  } else {
    try { token = sessionStorage.getItem(KEY); } catch (e) { token = null; }
  }
  const every = Math.max(250, Number(params.get('interval')) || 1500);
  const api = new URL('../api/v1/mesh', location.href);

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const e = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  };

  const short = (id) => (id.length <= 12 ? id : id.slice(0, 4) + '…' + id.slice(-6));
  const rate = (x) => (x === null || x === undefined ? '–' : x < 10 ? x.toFixed(1) : Math.round(x).toString());
  const ms = (x) => (x === null || x === undefined ? '–' : x < 1 ? Math.round(x * 1000) + 'µs' : x < 10 ? x.toFixed(1) + 'ms' : Math.round(x) + 'ms');
  const age = (s) => {
    if (!s || s < 0) return '–';
    if (s < 60) return Math.floor(s) + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + 'm';
    return Math.floor(s / 86400) + 'd' + String(Math.floor((s % 86400) / 3600)).padStart(2, '0') + 'h';
  };
  const errRate = (r) => (r.rates ? r.rates.errors : null);

  function setStatus(text, error) {
    const s = $('status');
    s.textContent = text;
    s.className = error ? 'status error' : 'status';
    document.body.dataset.status = error ? 'error' : 'live';
  }

  // layout places the relays on a circle: this relay on top.
  function layout(relays) {
    const n = relays.length, pos = new Map();
    const cx = W / 2, cy = H / 2, R = Math.min(W, H) / 2 - 90;
    relays.forEach((r, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
      pos.set(r.id, n === 1 ? { x: cx, y: cy } : { x: cx + R * Math.cos(a), y: cy + R * Math.sin(a) });
    });
    return pos;
  }

  function drawGraph(m) {
    const svg = $('graph');
    const relays = m.relays, n = relays.length;
    const pos = layout(relays);
    const scale = n > 24 ? 0.45 : n > 12 ? 0.7 : 1;
    const labels = n <= 24;
    const frag = document.createDocumentFragment();

    const links = el('svg:g', { class: 'links' });
    for (const l of m.links) {
      const a = pos.get(l.a), b = pos.get(l.b);
      if (!a || !b) continue;
      const cls = ['link'];
      if (!l.mesh.includes('broadcast')) cls.push('nomesh');
      if (l.limited) cls.push('limited');
      if (l.ends < 2) cls.push('oneway');
      const line = el('svg:line', { class: cls.join(' '), x1: a.x, y1: a.y, x2: b.x, y2: b.y, 'data-a': l.a, 'data-b': l.b });
      line.appendChild(el('svg:title', {}, `${short(l.a)} — ${short(l.b)}\nmesh: ${l.mesh.join(', ') || 'none'}\nlatency: ${ms(l.latency_ms)}` +
        (l.ends < 2 ? '\nreported by one end only' : '')));
      links.appendChild(line);
      if (labels && n <= 12 && l.latency_ms !== null) {
        links.appendChild(el('svg:text', { class: 'link-label', x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 4 }, ms(l.latency_ms)));
      }
    }
    frag.appendChild(links);

    const nodes = el('svg:g', { class: 'relays' });
    for (const r of relays) {
      const p = pos.get(r.id);
      const cls = ['relay', 'state-' + r.state];
      if (r.self) cls.push('self');
      const nodesHere = r.state === 'ok' ? r.local_nodes : null;
      const g = el('svg:g', {
        class: cls.join(' '), transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`,
        'data-id': r.id, 'data-state': r.state, 'data-nodes': nodesHere === null ? '' : nodesHere,
      });
      const rad = Math.round((26 + 5 * Math.sqrt(r.local_nodes || 0)) * scale);
      g.appendChild(el('svg:circle', { r: Math.min(rad, 60) }));
      g.appendChild(el('svg:title', {}, [
        r.id + (r.self ? ' (this relay)' : ''), 'state: ' + r.state + (r.error ? ' — ' + r.error : ''),
        'nodes: ' + (r.local_nodes ?? '–') + ', relays: ' + r.relay_peers + ', peers: ' + r.peers,
        'version: ' + (r.version || '–') + ', uptime: ' + age(r.uptime_seconds),
      ].join('\n')));
      g.appendChild(el('svg:text', { class: 'count', y: 5 }, nodesHere === null ? '?' : String(nodesHere)));
      if (labels) {
        const top = -Math.min(rad, 60) - 8;
        g.appendChild(el('svg:text', { class: 'name', y: top }, short(r.id) + (r.self ? ' ★' : '')));
        const below = Math.min(rad, 60) + 16;
        if (r.state === 'ok') {
          g.appendChild(el('svg:text', { class: 'rates', y: below },
            `${r.local_nodes} node${r.local_nodes === 1 ? '' : 's'} · in ${rate(r.rates && r.rates.messages_in)}/s · out ${rate(r.rates && r.rates.messages_out)}/s`));
          const e = errRate(r);
          if (e !== null && e > 0) g.appendChild(el('svg:text', { class: 'errors', y: below + 15 }, `errors ${rate(e)}/s`));
        } else {
          g.appendChild(el('svg:text', { class: 'badge', y: below }, r.state.toUpperCase()));
        }
      }
      nodes.appendChild(g);
    }
    frag.appendChild(nodes);
    svg.replaceChildren(frag);
  }

  function drawTable(m) {
    const rows = document.createDocumentFragment();
    for (const r of m.relays) {
      const tr = el('tr', { class: 'state-' + r.state + (r.self ? ' self' : ''), 'data-id': r.id, 'data-state': r.state });
      const td = (text, cls, title) => {
        const c = el('td', cls ? { class: cls } : {}, text);
        if (title) c.title = title;
        tr.appendChild(c);
      };
      const fresh = r.state === 'ok';
      td(short(r.id) + (r.self ? ' ★' : ''), 'id', r.id);
      td(r.state, 'state');
      td(fresh ? String(r.local_nodes) : r.in_directory ? '(' + r.directory_nodes + ')' : '–', 'n',
        fresh ? '' : 'nodes the presence directory lists for it');
      td(fresh || r.stale ? String(r.relay_peers) : '–', 'n');
      td(fresh || r.stale ? String(r.peers) : '–', 'n');
      td(fresh ? rate(r.rates && r.rates.messages_in) : '–', 'n');
      td(fresh ? rate(r.rates && r.rates.messages_out) : '–', 'n');
      const e = fresh ? errRate(r) : null;
      td(rate(e), e > 0 ? 'n err' : 'n');
      td(ms(r.rtt_ms), 'n');
      td(fresh ? age(r.uptime_seconds) : '–', 'n');
      td(r.version || '–');
      td(r.error || (r.stale ? 'last answer ' + new Date(r.answered_at).toLocaleTimeString() : ''), 'note');
      rows.appendChild(tr);
    }
    document.querySelector('#relays tbody').replaceChildren(rows);
  }

  function draw(m) {
    $('network').textContent = m.network ? '· ' + m.network : '';
    $('self').textContent = m.relay ? short(m.relay) : 'a standalone relay';
    const t = m.totals;
    $('totals').textContent = `${t.relays} relay${t.relays === 1 ? '' : 's'} · ${t.reachable} reachable · ${t.nodes} node${t.nodes === 1 ? '' : 's'}` +
      ` · in ${rate(t.messages_in_per_second)}/s · out ${rate(t.messages_out_per_second)}/s · errors ${rate(t.errors_per_second)}/s`;
    drawGraph(m);
    drawTable(m);
    document.body.dataset.relays = String(m.relays.length);
    setStatus(`live · swept ${new Date(m.generated_at).toLocaleTimeString()} in ${m.sweep_ms.toFixed(0)} ms`, false);
  }

  let timer = null, polling = false;
  async function poll() {
    timer = null;
    polling = true;
    try {
      const headers = { Accept: 'application/json' };
      if (token) headers.Authorization = 'Bearer ' + token;
      const res = await fetch(api, { headers, cache: 'no-store', credentials: 'omit' });
      if (res.status === 401) {
        setStatus(token ? 'error: the admin token is wrong' : 'error: this relay requires its admin token: open /ui/?token=TOKEN', true);
      } else if (!res.ok) {
        let detail = res.statusText;
        try { detail = (await res.json()).error || detail; } catch (e) { /* not JSON */ }
        setStatus('error: ' + res.status + ' ' + detail, true);
      } else {
        draw(await res.json());
      }
    } catch (e) {
      setStatus('error: admin API unreachable (' + e.message + ')', true);
    }
    polling = false;
    if (!document.hidden) timer = setTimeout(poll, every);
  }

  // A hidden tab stops polling; it polls again at once when shown.
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && timer === null && !polling) poll();
  });
  $('every').textContent = (every / 1000).toFixed(every % 1000 ? 2 : 0) + ' s';
  poll();
})();
