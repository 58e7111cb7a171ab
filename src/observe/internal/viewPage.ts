/**
 * The web view's page: one HTML document with its script. The script listens to `/events`
 * (server-sent events, one `ObserverSnapshot` per message) and draws the supervision tree,
 * the nodes, the devices, the last supervision events, and loss and accuracy curves with uPlot
 * (served from the package at /uplot.js and /uplot.css), recoveries marked as red lines.
 */
export const VIEW_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>zbmd view</title>
<link rel="stylesheet" href="/uplot.css">
<style>
  body { font-family: system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
  h1 { font-size: 20px; margin: 0 0 8px; }
  h2 { font-size: 15px; margin: 0 0 6px; }
  #status { color: #555; margin-bottom: 12px; font-size: 13px; }
  .grid { display: grid; grid-template-columns: minmax(320px, 1fr) 2fr; gap: 16px; }
  .card { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 10px 12px; margin-bottom: 16px; }
  ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 18px; font-family: ui-monospace, monospace; font-size: 13px; }
  ul.tree { padding-left: 0; }
  .pid { color: #666; }
  .sup { font-weight: bold; }
  .restarts { background: #d62728; color: white; border-radius: 8px; padding: 0 6px; margin-left: 6px; font-size: 11px; }
  .restarting { color: #d62728; }
  table { border-collapse: collapse; font-size: 13px; width: 100%; }
  td, th { text-align: left; padding: 2px 8px 2px 0; }
  .health-healthy { color: #2ca02c; } .health-warning { color: #b8860b; }
  .health-degraded, .health-critical { color: #d62728; font-weight: bold; }
  #events li { font-family: ui-monospace, monospace; font-size: 12px; }
  #events { max-height: 220px; overflow-y: auto; margin: 0; padding-left: 28px; }
  .empty { color: #888; font-size: 13px; }
</style>
</head>
<body>
<h1>zbmd view</h1>
<div id="status">connecting...</div>
<div class="grid">
  <div>
    <div class="card"><h2>Supervision tree</h2><ul class="tree" id="tree"></ul></div>
    <div class="card"><h2>Nodes</h2><div id="nodes"></div></div>
    <div class="card"><h2>Devices</h2><div id="devices"></div></div>
    <div class="card"><h2>Supervision events</h2><ol id="events"></ol></div>
  </div>
  <div>
    <div class="card"><h2>Loss per step</h2><div id="loss"></div></div>
    <div class="card"><h2>Test accuracy per epoch</h2><div id="accuracy"></div></div>
    <div class="card"><h2>Recoveries</h2><div id="recoveries" class="empty">none</div></div>
  </div>
</div>
<script src="/uplot.js"></script>
<script>
'use strict';
const text = (value) => String(value).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
let recoveries = [];
let lastStep = 1;
function recoveryLines(u) {
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = '#d62728';
  ctx.setLineDash([4, 3]);
  ctx.lineWidth = 1;
  for (const mark of recoveries) {
    const x = u.valToPos(mark.step, 'x', true);
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
  }
  ctx.restore();
}
function chart(element, label, colour, points, yRange) {
  const width = Math.max(400, element.clientWidth || 600);
  const scales = { x: { time: false, range: () => [0, lastStep] } };
  if (yRange) scales.y = { range: () => yRange };
  return new uPlot({
    width, height: 240,
    scales,
    axes: [{ label: 'step' }, {}],
    series: [{ label: 'step' }, { label, stroke: colour, width: 1.5, points: { show: points, size: 7, fill: colour } }],
    hooks: { draw: [recoveryLines] },
  }, [[], []], element);
}
const lossChart = chart(document.getElementById('loss'), 'loss', '#1f77b4', false);
const accuracyChart = chart(document.getElementById('accuracy'), 'test accuracy', '#2ca02c', true, [0, 1]);
window.zbmdCharts = { loss: lossChart, accuracy: accuracyChart };

function treeItem(node) {
  const restarts = node.restarts > 0 ? '<span class="restarts" title="restarts">' + node.restarts + '</span>' : '';
  const kind = node.type === 'supervisor' ? '<span class="sup">' + text(node.id) + '</span> ' + text(node.strategy || '') : text(node.id);
  const pidClass = node.pid === 'restarting' ? 'pid restarting' : 'pid';
  const children = node.children.length > 0 ? '<ul>' + node.children.map(treeItem).join('') + '</ul>' : '';
  return '<li data-id="' + text(node.id) + '" data-pid="' + text(node.pid) + '" data-restarts="' + node.restarts + '">' + kind +
    ' <span class="' + pidClass + '">' + text(node.pid) + '</span>' + restarts + children + '</li>';
}

function render(snapshot) {
  const stats = snapshot.stats;
  document.getElementById('status').textContent = snapshot.node + ' - ' + new Date(snapshot.timeMs).toLocaleTimeString() +
    ' - processes ' + stats.alive + ', crashes ' + stats.crashes + ', restarts ' + snapshot.restartsTotal +
    (snapshot.training ? ', step ' + snapshot.training.steps + ', ' + snapshot.training.stepsPerSec.toFixed(1) + ' steps/s' : '');
  document.getElementById('tree').innerHTML = snapshot.tree.length > 0 ? snapshot.tree.map(treeItem).join('') : '<li class="empty">no supervisor</li>';
  document.getElementById('nodes').innerHTML = snapshot.nodes.length > 0
    ? '<table>' + snapshot.nodes.map((n) => '<tr><td>' + text(n.name) + '</td><td>' + text(n.status) + '</td><td>' + (n.phi === undefined ? '' : 'phi ' + n.phi.toFixed(2)) + '</td><td>' + (n.leader ? 'leader' : '') + '</td></tr>').join('') + '</table>'
    : '<div class="empty">' + text(snapshot.node) + ' (this node; no cluster)</div>';
  document.getElementById('devices').innerHTML = snapshot.devices.length > 0
    ? '<table><tr><th></th><th>device</th><th>health</th><th>errors</th><th>memory</th></tr>' + snapshot.devices.map((d) =>
        '<tr><td>' + (d.current ? '&#9654;' : '') + '</td><td>' + text(d.id) + '</td><td class="health-' + text(d.health) + '">' + text(d.health) +
        '</td><td>' + d.errorCount + '</td><td>' + (d.memoryBytes > 0 ? (d.memoryBytes / 2 ** 30).toFixed(1) + ' GiB' : '-') + '</td></tr>').join('') + '</table>'
    : '<div class="empty">no devices reported</div>';
  document.getElementById('events').innerHTML = snapshot.events.slice().reverse().map((e) =>
    '<li>' + text(e.kind) + ' ' + text(e.childId || '') + ' ' + text(e.pid || '') + (e.reason ? ' (' + text(e.reason) + ')' : '') + '</li>').join('');
  const training = snapshot.training;
  if (training) {
    recoveries = training.recoveries;
    lastStep = Math.max(1, training.steps);
    lossChart.setData([training.loss.map((p) => p[0]), training.loss.map((p) => p[1])]);
    accuracyChart.setData([training.accuracy.map((p) => p[0]), training.accuracy.map((p) => p[1])]);
    const counts = {};
    for (const r of recoveries) counts[r.cause] = (counts[r.cause] || 0) + 1;
    const element = document.getElementById('recoveries');
    element.className = recoveries.length > 0 ? '' : 'empty';
    element.textContent = recoveries.length > 0
      ? recoveries.length + ' (' + Object.entries(counts).map(([c, n]) => c + ' ' + n).join(', ') + '), marked as red dashed lines'
      : 'none';
  }
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

const source = new EventSource('/events');
source.onmessage = (event) => render(JSON.parse(event.data));
source.onerror = () => { document.getElementById('status').textContent = 'disconnected; retrying...'; };
</script>
</body>
</html>
`;
