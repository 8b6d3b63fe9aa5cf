/* wsoak report.html: hover values and zoom for the charts over time. The page is drawn
   without this script (inline SVG); this only redraws those charts from the series
   embedded as JSON in #wsoak-series, so it must keep their markup. No network: nothing
   here loads anything. Comments in block form only: the page's self-containment test
   reads any double slash as a URL. */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('wsoak-series').textContent);
  var G = D.geometry, T = D.t, PW = G.w - G.l - G.r, PH = G.h - G.t - G.b;
  var range = [0, D.end], drag = null;
  var tip = document.createElement('div');
  tip.id = 'wsoak-tip';
  tip.className = 'tip';
  document.body.appendChild(tip);

  function esc(s) {
    return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
  }
  function num(v, decimals) {
    var s = v.toFixed(decimals);
    if (s.indexOf('.') >= 0) s = s.replace(/0+$/, '').replace(/\.$/, '');
    return s === '-0' ? '0' : s;
  }
  function value(v) {
    if (v === null) return 'no data';
    var a = Math.abs(v);
    return num(v, a >= 100 ? 0 : a >= 10 ? 1 : 3);
  }
  function axisValue(v) { return v >= 100 || v === Math.round(v) ? num(v, 0) : num(v, 2); }
  function niceMax(m) {
    if (!(m > 0) || !isFinite(m)) return 1;
    var mag = Math.pow(10, Math.floor(Math.log10(m)));
    var ms = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < ms.length; i++) if (m <= ms[i] * mag) return ms[i] * mag;
    return 10 * mag;
  }
  /* The same rule as html.rs's time_ticks: the smallest round step that gives at most
     maxTicks ticks, each a whole multiple of the step. */
  function ticks(t0, t1) {
    var span = Math.max(t1 - t0, 0), step = null, i;
    for (i = 0; i < D.steps.length; i++) {
      if (Math.floor(span / D.steps[i]) + 1 <= D.maxTicks) { step = D.steps[i]; break; }
    }
    if (step === null) {
      step = D.steps[D.steps.length - 1];
      while (Math.floor(span / step) + 1 > D.maxTicks) step *= 10;
    }
    var out = [];
    for (var k = Math.ceil(t0 / step - 1e-9); k <= Math.floor(t1 / step + 1e-9); k++) out.push(k * step);
    return { step: step, ticks: out };
  }
  function tickLabel(t, step) {
    if (step < 60) return num(t, Math.max(0, Math.floor(-Math.log10(step) + 0.75))) + 's';
    if (step < 3600) {
      var m = Math.round(t / 60);
      return m >= 60 ? Math.floor(m / 60) + 'h' + (m % 60 ? (m % 60) + 'm' : '') : m + 'm';
    }
    if (step < 86400) return Math.round(t / 3600) + 'h';
    return Math.round(t / 86400) + 'd';
  }
  function anchor(x, s) {
    var half = s.length * G.char / 2;
    return x + half > G.w - 2 ? 'end' : x - half < 2 ? 'start' : 'middle';
  }
  function clock(t) {
    if (t < 120) return num(t, 2) + ' s';
    var s = Math.round(t), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    var pad = function (n) { return (n < 10 ? '0' : '') + n; };
    return (h ? h + ':' + pad(m) : m) + ':' + pad(s % 60) + (h ? ' h' : ' min');
  }
  function draw(svg, c, t0, t1) {
    var x = function (t) { return G.l + (t - t0) / (t1 - t0) * PW; };
    var lo = 0, hi = T.length - 1;
    while (lo < T.length && T[lo] < t0) lo++;
    while (hi >= 0 && T[hi] > t1) hi--;
    var ymax = 0, i;
    c.series.forEach(function (s) {
      for (i = lo; i <= hi; i++) if (s.v[i] !== null && s.v[i] > ymax) ymax = s.v[i];
    });
    ymax = niceMax(ymax);
    var y = function (v) { return G.t + PH - v / ymax * PH; };
    var out = [], f = function (n) { return n.toFixed(1); };
    for (i = 0; i <= 4; i++) {
      var v = ymax * i / 4, yy = f(y(v));
      out.push('<line class="grid" x1="' + G.l + '" x2="' + (G.w - G.r) + '" y1="' + yy + '" y2="' + yy + '"/>' +
        '<text x="' + (G.l - 6) + '" y="' + f(y(v) + 4) + '" text-anchor="end">' + axisValue(v) + '</text>');
    }
    var tk = ticks(t0, t1);
    tk.ticks.forEach(function (t) {
      var xx = f(x(t)), s = tickLabel(t, tk.step);
      out.push('<line class="axis" x1="' + xx + '" x2="' + xx + '" y1="' + (G.t + PH) + '" y2="' + (G.t + PH + 4) + '"/>' +
        '<text x="' + xx + '" y="' + (G.h - G.b + 16) + '" text-anchor="' + anchor(x(t), s) + '">' + s + '</text>');
    });
    out.push('<text x="12" y="' + (G.t + PH / 2) + '" transform="rotate(-90 12 ' + (G.t + PH / 2) +
      ')" text-anchor="middle">' + esc(c.axis) + '</text><text x="' + (G.w - G.r) + '" y="' + (G.h - 3) +
      '" text-anchor="end">time since start</text>');
    c.series.forEach(function (s) {
      var d = '', pen = false, lone = [];
      for (i = lo; i <= hi; i++) {
        if (s.v[i] === null) { pen = false; continue; }
        d += (pen ? 'L' : 'M') + f(x(T[i])) + ',' + f(y(s.v[i]));
        pen = true;
        lone.push(i);
      }
      if (lone.length === 1) {
        out.push('<circle cx="' + f(x(T[lone[0]])) + '" cy="' + f(y(s.v[lone[0]])) + '" r="2.5" fill="' + s.color + '"/>');
      }
      out.push('<path d="' + (d || 'M0,0') + '" fill="none" stroke="' + s.color + '" stroke-width="1.5"><title>' + esc(s.name) + '</title></path>');
    });
    out.push('<line class="axis" x1="' + G.l + '" x2="' + G.l + '" y1="' + G.t + '" y2="' + (G.t + PH) + '"/>' +
      '<line class="axis" x1="' + G.l + '" x2="' + (G.w - G.r) + '" y1="' + (G.t + PH) + '" y2="' + (G.t + PH) + '"/>' +
      '<line class="cursor" x1="0" x2="0" y1="' + G.t + '" y2="' + (G.t + PH) + '"/>' +
      '<rect class="sel" x="0" y="' + G.t + '" width="0" height="' + PH + '"/>');
    svg.innerHTML = out.join('');
    svg.setAttribute('data-range', num(t0, 3) + '-' + num(t1, 3));
  }
  function zoom(a, b) {
    range = [a, b];
    D.charts.forEach(function (c) { draw(document.getElementById(c.id), c, a, b); });
    say(a, b);
  }
  function say(a, b) {
    var note = document.getElementById('zoom-note');
    if (note) {
      note.textContent = a === 0 && b === D.end
        ? 'Drag across a chart to zoom into a time range; double-click to zoom out.'
        : 'Showing ' + clock(a) + ' to ' + clock(b) + ' of the run. Double-click a chart to see it all.';
    }
  }
  function at(svg, ev) {
    var r = svg.getBoundingClientRect(), vx = (ev.clientX - r.left) * G.w / r.width;
    return { vx: vx, t: range[0] + (vx - G.l) / PW * (range[1] - range[0]) };
  }
  function nearest(t) {
    var lo = 0, hi = T.length - 1;
    if (hi < 0) return -1;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (T[mid] < t) lo = mid + 1; else hi = mid; }
    return lo > 0 && t - T[lo - 1] < T[lo] - t ? lo - 1 : lo;
  }
  function hide(svg) {
    svg.querySelector('.cursor').style.visibility = 'hidden';
    tip.style.display = 'none';
  }
  D.charts.forEach(function (c) {
    var svg = document.getElementById(c.id);
    if (!svg) return;
    svg.addEventListener('mousemove', function (ev) {
      var p = at(svg, ev);
      if (drag && drag.svg === svg) {
        var sel = svg.querySelector('.sel'), a = Math.max(G.l, Math.min(drag.vx, p.vx)), b = Math.min(G.w - G.r, Math.max(drag.vx, p.vx));
        sel.setAttribute('x', a);
        sel.setAttribute('width', Math.max(0, b - a));
        sel.style.visibility = 'visible';
      }
      var i = nearest(p.t);
      if (p.vx < G.l || p.vx > G.w - G.r || i < 0 || T[i] < range[0] || T[i] > range[1]) { hide(svg); return; }
      var xx = G.l + (T[i] - range[0]) / (range[1] - range[0]) * PW, cursor = svg.querySelector('.cursor');
      cursor.setAttribute('x1', xx);
      cursor.setAttribute('x2', xx);
      cursor.style.visibility = 'visible';
      tip.innerHTML = '<b>' + clock(T[i]) + '</b>' + c.series.map(function (s) {
        return '<div><i style="background:' + s.color + '"></i>' + esc(s.name) + ': ' +
          value(s.v[i]) + (s.v[i] === null ? '' : esc(c.suffix)) + '</div>';
      }).join('');
      tip.style.display = 'block';
      var left = ev.clientX + 14;
      if (left + tip.offsetWidth > window.innerWidth - 4) left = ev.clientX - 14 - tip.offsetWidth;
      tip.style.left = left + 'px';
      tip.style.top = (ev.clientY + 14) + 'px';
    });
    svg.addEventListener('mouseleave', function () { hide(svg); });
    svg.addEventListener('mousedown', function (ev) {
      ev.preventDefault();
      var p = at(svg, ev);
      drag = { svg: svg, vx: p.vx, t: p.t };
    });
    svg.addEventListener('dblclick', function () { zoom(0, D.end); });
  });
  window.addEventListener('mouseup', function (ev) {
    if (!drag) return;
    var p = at(drag.svg, ev), a = Math.max(range[0], Math.min(drag.t, p.t)), b = Math.min(range[1], Math.max(drag.t, p.t));
    drag.svg.querySelector('.sel').style.visibility = 'hidden';
    if (Math.abs(p.vx - drag.vx) > 4 && b > a) zoom(a, b);
    drag = null;
  });
  /* A range in the address (report.html#t=60-120) opens zoomed: links can point at an
     incident, and the browser test checks the redraw this way. */
  var m = /^#t=([0-9.]+)-([0-9.]+)$/.exec(location.hash);
  if (m && +m[2] > +m[1]) zoom(+m[1], +m[2]); else say(0, D.end);
  document.documentElement.setAttribute('data-charts', 'ready');
})();
