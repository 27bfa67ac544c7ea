-- wrk script: every request is an SCF event invocation with a ~1 KB API Gateway event.
-- wrk -t1 -c32 -d5s -s bench/event.lua http://127.0.0.1:PORT/event-invoke
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Scf-Request-Id"] = "wrk-0001"
wrk.headers["X-Scf-Memory"] = "128"
wrk.headers["X-Scf-Timeout"] = "3000"
wrk.headers["X-Scf-Version"] = "$LATEST"
wrk.headers["X-Scf-Name"] = "bench"
wrk.headers["X-Scf-Namespace"] = "default"
wrk.headers["X-Scf-Region"] = "ap-guangzhou"
wrk.headers["X-Scf-Appid"] = "1250000000"
wrk.headers["X-Scf-Uin"] = "100000000001"
local body = '{"requestContext":{"serviceId":"service-f94sy04v","path":"/test/{path}",'
  .. '"httpMethod":"POST","requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef",'
  .. '"identity":{"secretId":"abdcdxxxxxxxsdfs"},"sourceIp":"10.0.2.14","stage":"release"},'
  .. '"headers":{"accept-Language":"en-US,en,cn","accept":"text/html,application/xml,application/json",'
  .. '"host":"service-3ei3tii4-251000691.ap-guangzhou.apigateway.myqloud.com","user-agent":"User Agent String"},'
  .. '"body":"{\\"test\\":\\"body\\"}","pathParameters":{"path":"value"},"queryStringParameters":{"foo":"bar"},'
  .. '"headerParameters":{"Refer":"10.0.22.222"},"stageVariables":{"stage":"release"},"path":"/test/value",'
  .. '"queryString":{"foo":"bar","bob":"alice"},"httpMethod":"POST","pad":"'
body = body .. string.rep("x", 1022 - #body) .. '"}'
wrk.body = body
-- No response() callback: it would make wrk parse every answer in Lua. wrk prints
-- "Non-2xx or 3xx responses" itself, and profiles.sh fails a variant that has any.
