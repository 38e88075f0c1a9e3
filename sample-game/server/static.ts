// Serves the built game client from sample-game/dist. When the build is
// missing, GET / returns a page with the command that builds it.

import { existsSync } from 'node:fs';
import path from 'node:path';

import express, { type RequestHandler } from 'express';
import type { Logger } from 'pino';

import { GAME_DIST } from './build.js';

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sample game not built</title></head>
<body style="font-family: sans-serif; background: #0b1026; color: #e8ecff; padding: 2em">
<h1>The sample game is not built</h1>
<p>Run <code>npm run build:game</code>, or start the server with <code>npm start</code>, which builds it when needed.</p>
</body>
</html>
`;

export function serveGameClient(logger: Logger, dist: string = GAME_DIST): RequestHandler {
  const files = express.static(dist, { index: 'index.html', fallthrough: true });
  let warned = false;

  return (request, response, next) => {
    if (existsSync(path.join(dist, 'index.html'))) {
      files(request, response, next);
      return;
    }

    if (request.method !== 'GET' || request.path !== '/') {
      next();
      return;
    }

    if (!warned) {
      logger.warn({ dist }, 'the game client is not built; run npm run build:game or npm start');
      warned = true;
    }
    response.status(503).type('html').send(NOT_BUILT_PAGE);
  };
}
