// Preloaded with `node --require ./hosts.js`: points TradingView's host names at the local
// simulator inside this Node process only (the machine's resolver and /etc/hosts are untouched).
//
// TV_SIM_PORTS is a JSON object {"data.tradingview.com": 40123, "www.tradingview.com": 40124, …}.
// Every TLS connection to one of those names goes to 127.0.0.1 on its port, with the TLS server
// name (SNI and certificate check) still the real name, so the client verifies the simulator's
// certificate against the test CA given in NODE_EXTRA_CA_CERTS exactly as it would TradingView's.
// Any other *.tradingview.com name resolves to 127.0.0.1 too, so nothing can reach the internet.
const dns = require('dns');
const tls = require('tls');

const ports = JSON.parse(process.env.TV_SIM_PORTS || '{}');
const isTradingView = (host) => typeof host === 'string'
  && (host === 'tradingview.com' || host.endsWith('.tradingview.com'));

const realConnect = tls.connect;
tls.connect = function connectToSimulator(...args) {
  const [options] = args;
  if (options && typeof options === 'object' && isTradingView(options.host)) {
    const port = ports[options.host];
    if (!port) throw new Error(`hosts.js: no simulator port for ${options.host}`);
    args[0] = {
      ...options,
      host: '127.0.0.1',
      port,
      servername: options.servername || options.host,
    };
  }
  return realConnect.apply(this, args);
};

const realLookup = dns.lookup;
dns.lookup = function lookupSimulator(hostname, options, callback) {
  if (!isTradingView(hostname)) return realLookup.call(this, hostname, options, callback);
  const done = typeof options === 'function' ? options : callback;
  const all = typeof options === 'object' && options !== null && options.all;
  if (all) process.nextTick(done, null, [{ address: '127.0.0.1', family: 4 }]);
  else process.nextTick(done, null, '127.0.0.1', 4);
  return undefined;
};
