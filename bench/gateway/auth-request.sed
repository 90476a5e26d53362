# bench/gateway/auth-request.sed: docs/nginx-auth-request.conf as bench/run.sh measures it.
# Only these lines change (run.sh checks that each one applied, and keeps the whole diff in
# build/bench/gateway-auth-request.diff); the placeholders are replaced after this.
#
# - worker_processes: a stated number (auto is 2 on the 2-core bench machine; 1 when pinned);
s/^worker_processes auto;$/worker_processes @WORKERS@;/
# - no access log, like the plain proxy and apikeyd (--no-access-log) in the same measurement;
s/^    access_log access\.log;$/    access_log off;/
# - SO_REUSEPORT, like the plain proxy: one listener per worker;
s/^\(        listen 127\.0\.0\.1:@GATEWAY_PORT@\);$/\1 reuseport;/
# - HTTP/1.1 keep-alive to the API, exactly as the plain proxy has it, so that the only
#   difference between the two is the auth_request. (The shipped file keeps connections
#   alive to apikeyd, `keepalive 16`, but opens a new one to the API for every request.)
/^    upstream api {$/,/^    }$/s/^\(        server 127\.0\.0\.1:@UPSTREAM_PORT@;\)$/\1\n        keepalive 64;/
s/^\(            proxy_pass http:\/\/api;\)$/\1\n            proxy_http_version 1.1;\n            proxy_set_header Connection "";/
