// Makes sure Debian's chromium is at /usr/bin/chromium for the HTML report's browser test
// (packages/harness/src/report/html.browser.test.ts): run by `npm run setup` (so by `npm test`
// and `npm start`) and by .ci/run. As root with apt-get, it installs the package quietly (after
// an `apt-get update` when the first try fails); otherwise it says what to run. It never fails
// the setup: without chromium the browser test fails and says the same. Everything goes to
// stderr (stdout stays clean for `--json`). VMALOCK_SKIP_CHROMIUM=1 skips it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = '/usr/bin/chromium';
const INSTALL = ['install', '-y', '-qq', '--no-install-recommends', 'chromium'];
const say = (line) => process.stderr.write(`ensure-chromium: ${line}\n`);

const onPath = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

function aptGet(args) {
  const r = spawnSync('apt-get', args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: ['ignore', 'pipe', 'pipe'] });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

if (existsSync(CHROMIUM) || process.env.VMALOCK_SKIP_CHROMIUM === '1') process.exit(0);
const how = `apt-get install -y --no-install-recommends chromium`;
if (process.platform !== 'linux' || !onPath('apt-get')) {
  say(`${CHROMIUM} is missing and there is no apt-get here: install Debian's (or your system's) chromium at ${CHROMIUM} for the HTML report's browser test`);
  process.exit(0);
}
if (typeof process.getuid === 'function' && process.getuid() !== 0) {
  say(`${CHROMIUM} is missing: the HTML report's browser test needs it; run 'sudo ${how}'`);
  process.exit(0);
}
say(`installing Debian's chromium for the HTML report's browser test (${how}) ...`);
let r = aptGet(INSTALL);
if (!r.ok) {
  // A new machine may have no package lists yet, or old ones.
  const update = aptGet(['update', '-qq']);
  r = update.ok ? aptGet(INSTALL) : update;
}
if (r.ok && existsSync(CHROMIUM)) say(`installed ${CHROMIUM}`);
else {
  say(`could not install chromium with apt-get; the HTML report's browser test will fail until '${how}' works. apt-get said:`);
  process.stderr.write(r.output.split('\n').slice(-15).join('\n') + '\n');
}
