# The HTTP client's own HTTP/1.1 engine (http:// URLs) against a scripted
# server on loopback; test_http (core.cmake) covers the client against the
# embedded HTTP server.
ofe_unit_test(test_http_client_h1 unit/test_http_client_h1.c)
