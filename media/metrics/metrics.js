// The Metrics view's script: draws the model the extension posts (client/metricsModel.ts builds it; every number
// comes formatted). Text goes in with textContent only; charts are SVG drawn here — nothing is loaded from outside.
/* global acquireVsCodeApi, document, window */
(function () {
  'use strict';
  const vscode = acquireVsCodeApi();
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  const BAD = new Set(['runtime_error', 'timeout', 'memory_limit', 'output_limit', 'compile_error', 'internal_error']);

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setText(id, text) {
    const e = $(id);
    if (e && e.textContent !== text) e.textContent = text;
  }

  /** Rows of label | bar | value into a `.bars` grid. */
  function bars(container, rows) {
    container.replaceChildren();
    for (const row of rows) {
      const label = el('span', `bar-label ${row.className || ''}`, row.label);
      const track = el('div', `bar-track ${row.className || ''}`);
      const fill = el('div', `bar-fill${row.busy ? ' busy' : ''}`);
      fill.style.width = `${Math.round(Math.min(1, Math.max(0, row.ratio)) * 100)}%`;
      track.appendChild(fill);
      track.title = row.title || '';
      container.append(label, track, el('span', 'bar-value', row.value));
    }
  }

  function chart(model) {
    const box = el('div', 'chart');
    const h = el('h2', undefined, `${model.title} `);
    h.appendChild(el('span', 'muted', `(${model.span}, top ${model.maxText})`));
    box.appendChild(h);
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 100 40');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', `${model.title} over time`);
    for (const y of [0, 40]) {
      const axis = document.createElementNS(SVG, 'line');
      axis.setAttribute('x1', '0'); axis.setAttribute('x2', '100');
      axis.setAttribute('y1', String(y)); axis.setAttribute('y2', String(y));
      axis.setAttribute('class', 'axis');
      svg.appendChild(axis);
    }
    for (const s of model.series) {
      const n = s.values.length;
      if (n === 0) continue;
      const points = s.values.map((v, i) => {
        const x = n === 1 ? 100 : (i / (n - 1)) * 100;
        const y = 40 - (Math.min(v, model.max) / model.max) * 38 - 1;
        return `${x.toFixed(2)},${y.toFixed(2)}`;
      });
      if (n === 1) points.unshift(`0,${points[0].split(',')[1]}`);
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('points', points.join(' '));
      line.setAttribute('class', 'line');
      line.style.stroke = `var(${s.color})`;
      svg.appendChild(line);
    }
    box.appendChild(svg);
    const legend = el('div', 'legend');
    for (const s of model.series) {
      const item = el('span');
      const swatch = el('span', 'swatch');
      swatch.style.background = `var(${s.color})`;
      item.append(swatch, `${s.name} ${s.latest}`);
      legend.appendChild(item);
    }
    box.appendChild(legend);
    return box;
  }

  function render(m) {
    $('waiting').hidden = m.connected;
    $('metrics').hidden = !m.connected;
    if (!m.connected) return;
    setText('runs-total', String(m.runsTotal));
    setText('throughput', m.throughput);
    setText('p50', m.latency.p50);
    setText('p95', m.latency.p95);
    setText('pool-text', m.pool.text);
    setText('pool-queue', m.pool.queueText);
    bars($('workers'), m.workers.map((w) => ({
      label: w.id, ratio: w.utilisation, value: `${w.utilisationText} · ${w.runsText}`, busy: w.busy,
      title: `${w.id}: ${w.busy ? 'busy' : 'idle'}, utilisation ${w.utilisationText}`,
    })));
    setText('cache-hit-rate', m.cache.enabled ? `hit rate ${m.cache.hitRate}` : 'off');
    setText('cache-entries', m.cache.entries);
    setText('cache-bytes', m.cache.bytes);
    setText('cache-evictions', m.cache.evictions);
    setText('cache-hits-misses', m.cache.hitsMisses);
    const most = Math.max(1, ...m.verdicts.map((v) => v.count));
    bars($('verdicts'), m.verdicts.map((v) => ({
      label: v.status, ratio: v.count / most, value: String(v.count),
      className: v.status === 'ok' ? 'verdict-ok' : BAD.has(v.status) ? 'verdict-bad' : 'verdict-other',
    })));
    $('charts').replaceChildren(...m.charts.map(chart));
    setText('peak-memory', m.peakMemory);
    setText('server-rss', m.server.rss);
    setText('server-heap', m.server.heap);
    setText('peak-concurrency', m.peakConcurrency);
    setText('uptime', m.uptime);
    $('no-runs').hidden = m.recentRuns.length > 0;
    $('recent-runs').replaceChildren(...m.recentRuns.map((r) => {
      const li = el('li');
      const button = el('button');
      button.type = 'button';
      button.title = r.title;
      button.dataset.runId = r.runId;
      const name = el('span', undefined, `${r.language} `);
      name.appendChild(el('span', r.status === 'ok' ? 'status-ok' : BAD.has(r.status) ? 'status-bad' : '', r.status + (r.cached ? ' (cached)' : '')));
      button.append(name, el('span', 'num', r.duration), el('span', 'num', r.memory));
      li.appendChild(button);
      return li;
    }));
  }

  $('recent-runs').addEventListener('click', (event) => {
    const button = event.target instanceof window.Element ? event.target.closest('button[data-run-id]') : null;
    if (button) vscode.postMessage({ type: 'revealRun', runId: button.dataset.runId });
  });

  window.addEventListener('message', (event) => {
    const message = event.data;
    if (message && message.type === 'model' && message.model) {
      vscode.setState(message.model);
      render(message.model);
    }
  });

  const saved = vscode.getState();
  if (saved) render(saved);
  vscode.postMessage({ type: 'ready' });
})();
