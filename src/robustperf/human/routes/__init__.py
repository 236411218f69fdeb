"""The labelling app's routes, one module per part, each given the shared `AppContext` explicitly.

- `context.py`: what every route uses (the study, its database, the templates, the public origin) and
  the checks they share (signed in? cross-site? an error page or JSON);
- `labelling.py`: signing in with a secret link, the batch list, a batch's next item, an answer;
- `images.py`: a labeller's images (clean ones only after the adversarial answers) and ``app.js``;
- `quiz.py`: the anonymous public quiz over its own image pool;
- `admin.py`: the health check.

`robustperf.human.app.build_app` joins them behind its guard (body cap, security headers).
"""
