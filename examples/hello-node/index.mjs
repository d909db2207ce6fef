// A Jiffy node function: loaded once per warm instance, called once per invocation.
// Sync/async invoke: `event` is the JSON body. Raw HTTP (/fn/hello/...): `event` is
// {method, path, query, headers, body (base64)} and the {statusCode, headers, body} we return
// becomes the HTTP response.
let calls = 0;

export async function handler(event, context) {
  calls++;
  console.log(`invocation ${context.invocationId}, call ${calls} on this instance`);
  if (event && typeof event.method === 'string') {
    const body = Buffer.from(event.body ?? '', 'base64').toString('utf8');
    return {
      statusCode: 200,
      headers: { 'content-type': 'text/plain; charset=utf-8', 'x-served-by': 'hello-node' },
      body: `Hello over raw HTTP! ${event.method} ${event.path}?${event.rawQuery}${body ? ` body=${body}` : ''}\n`,
    };
  }
  const name = (event && event.name) || 'world';
  return { message: `Hello, ${name}!`, callsOnThisInstance: calls, runtime: `node ${process.version}` };
}
