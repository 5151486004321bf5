// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// Tests of bops/ebops and the fpga resource estimate (filled in by its issue).
