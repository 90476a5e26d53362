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
# - as many idle keep-alive connections to the API as the plain proxy keeps (the shipped file
#   keeps 32: HTTP/1.1 and `Connection ""` are in it already), so that the only difference
#   between the two is the auth_request.
/^    upstream api {$/,/^    }$/s/^\(        keepalive\) 32;.*$/\1 64;/
