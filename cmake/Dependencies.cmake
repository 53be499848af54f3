# Every dependency is a Debian package (scripts/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Eigen3 REQUIRED NO_MODULE)
# libtorch (Debian's libtorch-dev) trains the recurrent model; only vigil::model_train uses it.
find_package(Torch REQUIRED)
find_package(OpenSSL REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
pkg_check_modules(SECCOMP REQUIRED IMPORTED_TARGET libseccomp)
# tpm2-tss (libtss2-dev): ESAPI, the TCTI loader, marshalling and response-code decoding.
pkg_check_modules(TSS2 REQUIRED IMPORTED_TARGET tss2-esys tss2-tctildr tss2-mu tss2-rc)

# gRPC and protobuf for the decision service (src/api); the code generators are Debian's.
# absl_synchronization: src/api sets Abseil's mutex deadlock-detection mode (grpc_api.cc).
pkg_check_modules(GRPCPP REQUIRED IMPORTED_TARGET grpc++ protobuf absl_synchronization)
find_program(VIGIL_PROTOC protoc REQUIRED)
find_program(VIGIL_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
if(VIGIL_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(VIGIL_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

if(VIGIL_SANITIZE)
  add_compile_options(-fsanitize=${VIGIL_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${VIGIL_SANITIZE})
endif()
