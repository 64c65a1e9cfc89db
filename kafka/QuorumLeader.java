// Prints the node id of the active KRaft controller (the metadata quorum's leader), asked
// through a broker: `java -cp 'libs/*' kafka/QuorumLeader.java 127.0.0.1:29091`.
// Used by scripts/kafka-cluster.sh (`controller`), for the chaos suite's failover scenario.
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;

public class QuorumLeader {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("request.timeout.ms", "10000");
        props.put("default.api.timeout.ms", "15000");
        try (Admin admin = Admin.create(props)) {
            System.out.println(admin.describeMetadataQuorum().quorumInfo().get().leaderId());
        }
    }
}
