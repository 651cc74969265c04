# The HTTP client's response parser (common/http_parse.c): one connection's
# bytes parsed whole and in pieces, which must agree.
ofe_fuzzer(fuzz_http_response fuzz/fuzz_http_response.c)
if(TARGET fuzz_http_response)
  target_include_directories(fuzz_http_response PRIVATE ${PROJECT_SOURCE_DIR}/common)
endif()
