// Peer: Node.js http. The same echo as scf-lean's own (src/main.rs): the event checked to be JSON
// (400 if not), echoed as received, with the context from the X-Scf-* headers.
//   PORT=9000 node bench/peers/node/server.js
'use strict';
const http = require('http');

const num = (v) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : null);

http
  .createServer((req, res) => {
    if (req.url !== '/event-invoke') {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"errorCode":404}');
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const event = Buffer.concat(chunks);
      try {
        JSON.parse(event);
      } catch (e) {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end('{"errorCode":400,"errorMessage":"the event is not valid JSON"}');
        return;
      }
      const h = req.headers;
      const ctx = JSON.stringify({
        request_id: h['x-scf-request-id'] ?? null,
        function_name: h['x-scf-name'] ?? null,
        function_version: h['x-scf-version'] ?? null,
        namespace: h['x-scf-namespace'] ?? null,
        memory_limit_in_mb: num(h['x-scf-memory']),
        time_limit_in_ms: num(h['x-scf-timeout']),
        tencentcloud_region: h['x-scf-region'] ?? null,
        tencentcloud_appid: h['x-scf-appid'] ?? null,
        tencentcloud_uin: h['x-scf-uin'] ?? null,
      });
      const body = Buffer.concat([Buffer.from('{"event":'), event, Buffer.from(',"context":' + ctx + '}')]);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
      res.end(body);
    });
  })
  .listen(Number(process.env.PORT || 9000), '0.0.0.0');
