// Drives @mathieuc/tradingview through its documented API (Client, Session.Quote, Market,
// Session.Chart, setMarket, periods, getUser) and prints one JSON object of what it saw.
//
//   node --require ./hosts.js client.js user
//   node --require ./hosts.js client.js login      (TV_USERNAME, TV_PASSWORD)
//   node --require ./hosts.js client.js quotes <symbol>
//   node --require ./hosts.js client.js chart <symbol> <timeframe> <range>
//
// TV_SESSIONID / TV_SIGNATURE, when set, are the user's `sessionid` / `sessionid_sign` cookies.
// A scenario ends when it has seen what it waits for, on the first error, or after
// TV_CONFORMANCE_TIMEOUT_MS (then `timedOut` is true).
const TradingView = require('@mathieuc/tradingview');

const [scenario, symbol, timeframe, range] = process.argv.slice(2);
const session = process.env.TV_SESSIONID || '';
const signature = process.env.TV_SIGNATURE || '';
const limitMs = Number(process.env.TV_CONFORMANCE_TIMEOUT_MS || 10000);

const seen = { scenario, errors: [], timedOut: false };
let client = null;
let finished = false;

function finish(extra = {}) {
  if (finished) return;
  finished = true;
  process.stdout.write(`${JSON.stringify({ ...seen, ...extra })}\n`);
  const closing = client ? client.end() : Promise.resolve();
  closing.then(() => process.exit(0));
}

function failWith(...error) {
  seen.errors.push(error);
  finish();
}

setTimeout(() => { seen.timedOut = true; finish(); }, limitMs);

function newClient() {
  client = new TradingView.Client(session ? { token: session, signature } : {});
  client.onError(failWith);
  return client;
}

function quotes() {
  const quote = new (newClient().Session.Quote)({ fields: 'all' });
  const market = new quote.Market(symbol);
  let snapshot = null;
  market.onError(failWith);
  market.onLoaded(() => { seen.loaded = true; });
  market.onData((data) => {
    if (!seen.loaded) return;
    if (snapshot === null) snapshot = { ...data };
    else if (data.lp !== snapshot.lp) finish({ snapshot, latest: data });
  });
}

function chart() {
  const chartSession = new (newClient().Session.Chart)();
  let first = null;
  chartSession.onError(failWith);
  chartSession.onSymbolLoaded(() => { seen.symbol = chartSession.infos; });
  chartSession.onUpdate(() => {
    const periods = chartSession.periods;
    if (periods.length === 0) return;
    if (first === null) first = periods.map((p) => ({ ...p }));
    else if (JSON.stringify(periods[0]) !== JSON.stringify(first[0])) {
      finish({ first, latest: periods });
    }
  });
  chartSession.setMarket(symbol, { timeframe, range: Number(range) });
}

async function user() {
  try {
    const found = await TradingView.getUser(session, signature);
    finish({ user: { id: found.id, username: found.username, authToken: found.authToken } });
  } catch (error) {
    failWith('getUser', error.message);
  }
}

// The first step of a password sign-in (the client has no second step: a two-factor account
// makes it throw the site's error).
async function login() {
  try {
    const found = await TradingView.loginUser(process.env.TV_USERNAME, process.env.TV_PASSWORD, true);
    finish({ user: { id: found.id, username: found.username, session: found.session, signature: found.signature, authToken: found.authToken } });
  } catch (error) {
    failWith('loginUser', error.message);
  }
}

({ quotes, chart, user, login })[scenario]();
