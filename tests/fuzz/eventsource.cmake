# ofe-eventsource parsers: cron schedules (with the zone they run in), TZif
# files and POSIX TZ strings, webhook authentication headers.
ofe_fuzzer(fuzz_cron fuzz/fuzz_cron.c LIBS ofe_eventsource)
ofe_fuzzer(fuzz_tzif fuzz/fuzz_tzif.c LIBS ofe_eventsource)
ofe_fuzzer(fuzz_webhook_sig fuzz/fuzz_webhook_sig.c LIBS ofe_eventsource)
