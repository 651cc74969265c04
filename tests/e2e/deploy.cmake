# Deployment files: systemd units verified against this build's binaries.
ofe_script_test(deploy_systemd_units COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_systemd_units.sh
                LABELS e2e)
set_tests_properties(deploy_systemd_units PROPERTIES SKIP_RETURN_CODE 77)
