// A grouped bar chart as SVG text, no dependency: one group per scenario, one bar per contender,
// bar height = the contender's fraction of the C++ limit on a log scale (values differ by three
// orders of magnitude between scenarios and contenders), the value printed above each bar.
const COLORS = ['#1f77b4', '#6baed6', '#d62728', '#2ca02c', '#ff7f0e', '#ffbb78', '#9467bd', '#8c564b'];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function label(v) {
  if (v >= 0.1) return `${Math.round(v * 100)}%`;
  return `${+(v * 100).toPrecision(2)}%`;
}

/** { title, subtitle, groups: [{ label, values: [{ key, label, value | null, na }] }] } -> SVG text. */
export function renderChart({ title, subtitle, groups }) {
  const keys = [];
  for (const g of groups) for (const v of g.values) if (!keys.find((k) => k.key === v.key)) keys.push({ key: v.key, label: v.label });
  const color = (key) => COLORS[keys.findIndex((k) => k.key === key) % COLORS.length];
  const all = groups.flatMap((g) => g.values.map((v) => v.value)).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(0.001, ...all)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(1, ...all)));
  const bar = 18;
  const gap = 28;
  const left = 70;
  const top = 70;
  const plotH = 360;
  const groupW = keys.length * bar + gap;
  const width = Math.max(900, left + groups.length * groupW + 30);
  const legendRows = Math.ceil(keys.length / 3);
  const height = top + plotH + 70 + legendRows * 22 + 20;
  const y = (v) => top + plotH - (plotH * (Math.log10(v) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif">`);
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  out.push(`<text x="${left}" y="28" font-size="17" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="${left}" y="50" font-size="12" fill="#555">${esc(subtitle)}</text>`);
  for (let p = Math.log10(lo); p <= Math.log10(hi); p++) {
    const v = 10 ** p;
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${left}" x2="${width - 20}" y1="${yy}" y2="${yy}" stroke="${v === 1 ? '#333' : '#ddd'}" stroke-width="1"${v === 1 ? ' stroke-dasharray="6 3"' : ''}/>`);
    out.push(`<text x="${left - 8}" y="${(+yy + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#333">${label(v)}</text>`);
  }
  out.push(`<text x="16" y="${top + plotH / 2}" font-size="12" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle">of the limit (log)</text>`);
  groups.forEach((g, gi) => {
    const x0 = left + gap / 2 + gi * groupW;
    g.values.forEach((v, i) => {
      const x = x0 + i * bar;
      if (v.value > 0) {
        const yy = y(v.value);
        out.push(`<rect x="${x}" y="${yy.toFixed(1)}" width="${bar - 3}" height="${(top + plotH - yy).toFixed(1)}" fill="${color(v.key)}"><title>${esc(`${v.label}: ${label(v.value)} of the limit`)}</title></rect>`);
        out.push(`<text x="${x + (bar - 3) / 2}" y="${(yy - 4).toFixed(1)}" font-size="9" text-anchor="end" transform="rotate(-90 ${x + (bar - 3) / 2 + 3} ${(yy - 4).toFixed(1)})">${label(v.value)}</text>`);
      } else {
        out.push(`<text x="${x + (bar - 3) / 2 + 3}" y="${top + plotH - 4}" font-size="9" fill="#999" transform="rotate(-90 ${x + (bar - 3) / 2 + 3} ${top + plotH - 4})">${v.na ? 'n/a' : 'failed'}</text>`);
      }
    });
    const words = g.label.split(' ');
    const first = words.shift();
    out.push(`<text x="${x0 + (keys.length * bar) / 2}" y="${top + plotH + 18}" font-size="12" font-weight="bold" text-anchor="middle">${esc(first)}</text>`);
    out.push(`<text x="${x0 + (keys.length * bar) / 2}" y="${top + plotH + 33}" font-size="10" text-anchor="middle" fill="#444">${esc(words.join(' ').slice(0, 30))}</text>`);
  });
  keys.forEach((k, i) => {
    const lx = left + (i % 3) * 300;
    const ly = top + plotH + 60 + Math.floor(i / 3) * 22;
    out.push(`<rect x="${lx}" y="${ly - 11}" width="14" height="14" fill="${color(k.key)}"/>`);
    out.push(`<text x="${lx + 20}" y="${ly}" font-size="12">${esc(k.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
