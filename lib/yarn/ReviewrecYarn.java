// A YARN ResourceManager with NodeManagers and an HDFS NameNode with a DataNode, in one JVM, on
// 127.0.0.1: Hadoop's MiniYARNCluster and MiniDFSCluster (the classes Spark's own YARN
// integration suite runs against), started by lib/yarn.sh (`./spark-submit.sh yarn up`).
// Compiled by lib/yarn.sh with javac against the jars of lib/yarn/pom.xml.
//
//   java ReviewrecYarn STATE_DIR NN_PORT RM_PORT RM_WEB_PORT NODE_MANAGERS NN_HTTP_PORT
//
// Writes the client configuration (core-site.xml, hdfs-site.xml, yarn-site.xml: what Spark's
// HADOOP_CONF_DIR needs, nothing of the miniclusters' test-only settings) to STATE_DIR/hadoop-conf
// and, once every daemon is up, STATE_DIR/ready. Runs until SIGTERM, then stops YARN and HDFS.
// Exits 1 on a failed start (MiniDFSCluster's threads would otherwise keep the JVM alive).
// Each NodeManager offers 4096 MB (MiniYARNCluster sets that itself) and the vcores below.

import java.io.File;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;

public class ReviewrecYarn {
  private static final String HOST = "127.0.0.1";

  public static void main(String[] args) throws Exception {
    if (args.length != 6) {
      System.err.println("usage: ReviewrecYarn STATE_DIR NN_PORT RM_PORT RM_WEB_PORT NODE_MANAGERS NN_HTTP_PORT");
      System.exit(2);
    }
    File state = new File(args[0]).getAbsoluteFile();
    int nnPort = Integer.parseInt(args[1]);
    int rmPort = Integer.parseInt(args[2]);
    int rmWebPort = Integer.parseInt(args[3]);
    int nodeManagers = Integer.parseInt(args[4]);
    int nnHttpPort = Integer.parseInt(args[5]);
    File ready = new File(state, "ready");
    ready.delete();

    MiniDFSCluster dfs = null;
    MiniYARNCluster yarn = null;
    try {
      Configuration conf = new YarnConfiguration();
      // HDFS: one NameNode on a fixed port, one DataNode, one replica; data under STATE_DIR/hdfs,
      // formatted at every start.
      conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, new File(state, "hdfs").getPath());
      conf.set("dfs.replication", "1");
      conf.set("dfs.permissions.enabled", "false");
      // WebHDFS on a fixed port: lib/yarn.sh stages the packed Python environment through it.
      conf.set("dfs.namenode.http-address", HOST + ":" + nnHttpPort);
      conf.set("hadoop.tmp.dir", new File(state, "tmp").getPath());
      dfs = new MiniDFSCluster.Builder(conf)
          .nameNodePort(nnPort)
          .nameNodeHttpPort(nnHttpPort)
          .numDataNodes(1)
          .format(true)
          .build();
      dfs.waitActive();
      String defaultFs = "hdfs://" + HOST + ":" + nnPort;
      conf.set("fs.defaultFS", defaultFs);

      // YARN: fixed ports on 127.0.0.1, the FIFO scheduler, small minimum containers, and no
      // memory policing (Python workers and TensorFlow run beside each executor's JVM).
      conf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_FIXED_PORTS, true);
      conf.set(YarnConfiguration.RM_ADDRESS, HOST + ":" + rmPort);
      conf.set(YarnConfiguration.RM_SCHEDULER_ADDRESS, HOST + ":" + (rmPort + 1));
      conf.set(YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS, HOST + ":" + (rmPort + 2));
      conf.set(YarnConfiguration.RM_ADMIN_ADDRESS, HOST + ":" + (rmPort + 3));
      conf.set(YarnConfiguration.RM_WEBAPP_ADDRESS, HOST + ":" + rmWebPort);
      conf.set(YarnConfiguration.RM_BIND_HOST, HOST);
      conf.set(YarnConfiguration.NM_BIND_HOST, HOST);
      conf.set(YarnConfiguration.RM_SCHEDULER,
          "org.apache.hadoop.yarn.server.resourcemanager.scheduler.fifo.FifoScheduler");
      conf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 128);
      conf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB, 4096);
      conf.setInt(YarnConfiguration.NM_VCORES, 4);
      conf.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, false);
      conf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
      // A full-ish disk must not mark the only node unhealthy in the middle of a test run.
      conf.setFloat(YarnConfiguration.NM_MAX_PER_DISK_UTILIZATION_PERCENTAGE, 99.5f);
      // Keep finished containers' directories (executor logs) for a minute.
      conf.setInt(YarnConfiguration.DEBUG_NM_DELETE_DELAY_SEC, 60);
      // ApplicationMaster attempts: a job may ask for fewer with spark.yarn.maxAppAttempts.
      conf.setInt(YarnConfiguration.RM_AM_MAX_ATTEMPTS, 2);
      // The environment containers see: JAVA_HOME (containers run $JAVA_HOME/bin/java).
      conf.set(YarnConfiguration.NM_ENV_WHITELIST,
          "JAVA_HOME,HADOOP_COMMON_HOME,HADOOP_HDFS_HOME,HADOOP_CONF_DIR,HADOOP_YARN_HOME,PATH,LANG,TZ");
      yarn = new MiniYARNCluster("reviewrec-yarn", 1, nodeManagers, 1, 1);
      yarn.init(conf);
      yarn.start();
      if (!yarn.waitForNodeManagersToConnect(60_000)) {
        throw new IllegalStateException("the NodeManagers did not register within 60 s");
      }

      Map<String, String> core = new LinkedHashMap<>();
      core.put("fs.defaultFS", defaultFs);
      Map<String, String> hdfs = new LinkedHashMap<>();
      hdfs.put("dfs.replication", "1");
      // One DataNode: a write must not wait for a second one to replace a failed pipeline node.
      hdfs.put("dfs.client.block.write.replace-datanode-on-failure.enable", "false");
      Map<String, String> yarnSite = new LinkedHashMap<>();
      for (String key : new String[] {YarnConfiguration.RM_ADDRESS, YarnConfiguration.RM_SCHEDULER_ADDRESS,
          YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS, YarnConfiguration.RM_ADMIN_ADDRESS,
          YarnConfiguration.RM_WEBAPP_ADDRESS}) {
        yarnSite.put(key, yarn.getConfig().get(key));
      }
      File confDir = new File(state, "hadoop-conf");
      confDir.mkdirs();
      writeSite(new File(confDir, "core-site.xml"), core);
      writeSite(new File(confDir, "hdfs-site.xml"), hdfs);
      writeSite(new File(confDir, "yarn-site.xml"), yarnSite);
    } catch (Throwable t) {
      t.printStackTrace();
      System.err.println("ReviewrecYarn: start failed: " + t);
      System.exit(1);
    }

    final MiniDFSCluster dfsFinal = dfs;
    final MiniYARNCluster yarnFinal = yarn;
    // SIGTERM: stop YARN (its NodeManagers stop their containers) and HDFS, within 20 s; a
    // daemon that does not stop in time is halted (lib/yarn.sh then stops what is left).
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      System.err.println("ReviewrecYarn: stopping YARN and HDFS");
      ready.delete();
      Thread stopper = new Thread(() -> {
        try {
          yarnFinal.stop();
        } catch (Throwable t) {
          t.printStackTrace();
        }
        try {
          dfsFinal.shutdown();
        } catch (Throwable t) {
          t.printStackTrace();
        }
      });
      stopper.setDaemon(true);
      stopper.start();
      try {
        stopper.join(20_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      System.err.println(stopper.isAlive() ? "ReviewrecYarn: not stopped within 20 s, halting" : "ReviewrecYarn: stopped");
      Runtime.getRuntime().halt(0);
    }));
    Files.write(ready.toPath(), ("nn=" + HOST + ":" + nnPort + "\nrm=" + HOST + ":" + rmPort
        + "\nweb=" + HOST + ":" + rmWebPort + "\nwebhdfs=" + HOST + ":" + nnHttpPort + "\n").getBytes(StandardCharsets.UTF_8));
    System.err.println("ReviewrecYarn: ready (HDFS hdfs://" + HOST + ":" + nnPort + ", ResourceManager "
        + HOST + ":" + rmPort + ", web UI http://" + HOST + ":" + rmWebPort + ")");
    Thread.currentThread().join();
  }

  private static void writeSite(File f, Map<String, String> props) throws Exception {
    File tmp = new File(f.getPath() + ".tmp");
    try (PrintWriter w = new PrintWriter(tmp, StandardCharsets.UTF_8)) {
      w.println("<?xml version=\"1.0\"?>");
      w.println("<!-- Written by lib/yarn.sh's ReviewrecYarn for the cluster it started. -->");
      w.println("<configuration>");
      for (Map.Entry<String, String> e : props.entrySet()) {
        w.println("  <property><name>" + e.getKey() + "</name><value>" + e.getValue() + "</value></property>");
      }
      w.println("</configuration>");
    }
    Files.move(tmp.toPath(), f.toPath(), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
  }
}
